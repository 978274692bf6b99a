//! `/openapi.yaml`: the API description, compiled into the binary so that the document a
//! client reads always describes the version that answers it.

use warp::Filter;
use warp::http::header::CONTENT_TYPE;
use warp::reply::Response;

use super::{get_or_head, respond};

/// The OpenAPI 3.1 document at the repository root.
pub const DOCUMENT: &str = include_str!("../../openapi.yaml");

/// The YAML media type (RFC 9512).
pub const CONTENT_TYPE_YAML: &str = "application/yaml";

/// GET /openapi.yaml: the OpenAPI document, byte for byte.
pub fn filter() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("openapi.yaml").and(get_or_head()).map(|| {
        respond(warp::reply::with_header(
            DOCUMENT,
            CONTENT_TYPE,
            CONTENT_TYPE_YAML,
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use yaml_rust2::{Yaml, YamlLoader};

    use super::*;
    use crate::domain::Username;
    use crate::routes::MAX_BODY_BYTES;
    use crate::routes::observe::{ROUTES, route_template};

    fn document() -> Yaml {
        let mut documents = YamlLoader::load_from_str(DOCUMENT).expect("openapi.yaml is YAML");
        assert_eq!(documents.len(), 1, "one YAML document");
        documents.remove(0)
    }

    fn paths(doc: &Yaml) -> BTreeSet<String> {
        doc["paths"]
            .as_hash()
            .expect("paths")
            .keys()
            .map(|k| k.as_str().expect("a path is a string").to_owned())
            .collect()
    }

    #[test]
    fn is_openapi_3_1() {
        let doc = document();
        assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
        assert_eq!(doc["info"]["version"].as_str(), Some(crate::VERSION));
    }

    #[test]
    fn documents_exactly_the_routes_of_the_router() {
        let documented = paths(&document());
        let routes: BTreeSet<String> = ROUTES.iter().map(|r| r.to_string()).collect();
        assert_eq!(documented, routes);
        // And the metric label of a request to each route is that route.
        for route in ROUTES {
            let concrete = route.replace("{username}", "alice");
            assert_eq!(route_template(&concrete), route, "{concrete}");
        }
    }

    #[test]
    fn the_username_limits_are_the_code_limits() {
        let doc = document();
        let schema = &doc["components"]["schemas"]["Username"];
        assert_eq!(schema["minLength"].as_i64(), Some(1));
        assert_eq!(
            schema["maxLength"].as_i64(),
            Some(Username::MAX_CHARS as i64)
        );
        for example in doc["components"]["parameters"]["Username"]["examples"]
            .as_hash()
            .expect("examples")
            .values()
        {
            let name = example["value"].as_str().expect("a string example");
            assert!(Username::parse(name).is_ok(), "{name}");
        }
    }

    /// Every character `char::is_alphabetic` accepts, as merged inclusive code point ranges.
    fn alphabetic_ranges() -> Vec<(u32, u32)> {
        let mut ranges = Vec::new();
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            if c.is_alphabetic() {
                merge(&mut ranges, u32::from(c), u32::from(c));
            }
        }
        ranges
    }

    fn merge(ranges: &mut Vec<(u32, u32)>, low: u32, high: u32) {
        match ranges.last_mut() {
            Some(last) if last.1 + 1 == low => last.1 = high,
            _ => ranges.push((low, high)),
        }
    }

    /// The ranges of a `^[...]+$` pattern whose class holds only literal characters and ranges.
    fn class_ranges(pattern: &str) -> Vec<(u32, u32)> {
        let class = pattern
            .strip_prefix("^[")
            .and_then(|p| p.strip_suffix("]+$"))
            .expect("a ^[...]+$ pattern");
        let mut chars = class.chars().peekable();
        let mut ranges = Vec::new();
        while let Some(low) = chars.next() {
            let high = match chars.next_if_eq(&'-') {
                Some(_) => chars.next().expect("a range end"),
                None => low,
            };
            merge(&mut ranges, u32::from(low), u32::from(high));
        }
        ranges
    }

    /// The `pattern:` entry of openapi.yaml's `Username` schema for `ranges`, in YAML escapes.
    fn pattern_yaml(ranges: &[(u32, u32)]) -> String {
        let escape = |u: u32| match u {
            0..=0xFFFF => format!(r"\u{u:04X}"),
            _ => format!(r"\U{u:08X}"),
        };
        let mut lines = vec![String::new()];
        for &(low, high) in ranges {
            let item = match high - low {
                0 => escape(low),
                1 => format!("{}{}", escape(low), escape(high)),
                _ => format!("{}-{}", escape(low), escape(high)),
            };
            if lines
                .last()
                .is_some_and(|line| line.len() + item.len() > 84)
            {
                lines.push(String::new());
            }
            lines.last_mut().expect("a line").push_str(&item);
        }
        let body: String = lines.iter().map(|l| format!("          {l}\\\n")).collect();
        format!("      pattern: \"^[\\\n{body}          ]+$\"")
    }

    /// The pattern spells `char::is_alphabetic` out range by range, so that every tool reads
    /// it (schemathesis turns `\p{Alphabetic}` into Latin letters). A Rust upgrade with new
    /// Unicode tables fails this test, which prints the replacement.
    #[test]
    fn the_username_pattern_is_char_is_alphabetic_character_by_character() {
        let doc = document();
        let schema = &doc["components"]["schemas"]["Username"];
        let pattern = schema["pattern"].as_str().expect("pattern");
        let description = schema["description"].as_str().expect("description");
        let (major, minor, _) = char::UNICODE_VERSION;
        let expected = alphabetic_ranges();
        assert!(
            class_ranges(pattern) == expected
                && description.contains(&format!("Unicode {major}.{minor},")),
            "openapi.yaml's Username pattern is not char::is_alphabetic of Unicode \
             {major}.{minor}: write that version into its description and replace the \
             pattern with\n{}",
            pattern_yaml(&expected)
        );
    }

    #[test]
    fn the_body_limit_is_the_code_limit() {
        let doc = document();
        let description = doc["paths"]["/hello/{username}"]["put"]["description"]
            .as_str()
            .expect("description");
        assert!(
            description.contains(&format!("at most {MAX_BODY_BYTES} bytes")),
            "{description}"
        );
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(doc: &Yaml, node: &Yaml, broken: &mut Vec<String>) {
            match node {
                Yaml::Hash(hash) => {
                    for (key, value) in hash {
                        if key.as_str() == Some("$ref") {
                            let target = value.as_str().unwrap_or_default();
                            let resolved = target
                                .strip_prefix("#/")
                                .map(|pointer| pointer.split('/').fold(doc, |n, key| &n[key]));
                            if resolved.is_none_or(Yaml::is_badvalue) {
                                broken.push(target.to_owned());
                            }
                        } else {
                            walk(doc, value, broken);
                        }
                    }
                }
                Yaml::Array(items) => items.iter().for_each(|item| walk(doc, item, broken)),
                _ => {}
            }
        }
        let doc = document();
        let mut broken = Vec::new();
        walk(&doc, &doc, &mut broken);
        assert!(broken.is_empty(), "unresolved: {broken:?}");
    }
}
