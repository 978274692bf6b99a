//! The deployment, checked against the app it deploys: nothing here can reach AWS, so the
//! Terraform (parsed with `hcl-rs`), the Dockerfile, the workflows and the checkov config are
//! read as files and held to the app's facts and to the zero-downtime rules.
//!
//! The app's facts come from the app itself wherever they live in code: the readiness and
//! liveness routes from `src/routes/health.rs`, the shutdown timeout from
//! `hello_birthday::configuration::DEFAULT_SHUTDOWN_TIMEOUT_SECS`, the port, data directory,
//! user and entrypoint from the Dockerfile. Each environment root (staging, production) is
//! evaluated with its own `terraform.tfvars`, following module calls and `var.`/`local.`
//! references, so a value that differs per environment is checked in each.
//!
//! Run alone with `cargo test --test infra`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Map, ObjectKey, Value};
use hello_birthday::configuration::DEFAULT_SHUTDOWN_TIMEOUT_SECS;

const ENVIRONMENTS: [&str; 2] = ["staging", "production"];
/// Fargate's ceiling for a container's stopTimeout.
const FARGATE_MAX_STOP_TIMEOUT: i64 = 120;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The app's facts.

/// What the runtime stage of the Dockerfile declares.
#[derive(Debug)]
struct Image {
    expose: i64,
    env: BTreeMap<String, String>,
    uid: i64,
    gid: i64,
    entrypoint: Vec<String>,
    healthcheck: Vec<String>,
}

impl Image {
    fn read() -> Image {
        let text = read("Dockerfile");
        // Join continuation lines, drop comments, keep the last stage only.
        let joined = text.replace("\\\n", " ");
        let lines: Vec<&str> = joined
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let last_from = lines
            .iter()
            .rposition(|l| l.starts_with("FROM "))
            .expect("Dockerfile has no FROM");
        let stage = &lines[last_from..];
        let instruction = |name: &str| -> Vec<&str> {
            stage
                .iter()
                .filter_map(|l| l.strip_prefix(name).map(str::trim))
                .collect()
        };
        let single = |name: &str| -> &str {
            match instruction(name).as_slice() {
                [one] => one,
                other => panic!("the runtime stage needs exactly one {name}, has {other:?}"),
            }
        };

        let expose = single("EXPOSE ")
            .trim_end_matches("/tcp")
            .parse()
            .expect("EXPOSE is a port number");

        let mut env = BTreeMap::new();
        for line in instruction("ENV ") {
            for pair in line.split_whitespace() {
                let (key, value) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("ENV {pair:?}: use the KEY=value form"));
                env.insert(key.to_owned(), value.trim_matches('"').to_owned());
            }
        }

        let user = single("USER ");
        let (uid, gid) = user.split_once(':').unwrap_or_else(|| {
            panic!("USER {user}: give a numeric uid:gid, as the EFS access point needs")
        });
        let number = |s: &str| -> i64 {
            s.parse()
                .unwrap_or_else(|_| panic!("USER {user}: uid and gid must be numbers"))
        };

        let exec_form = |what: &str, json: &str| -> Vec<String> {
            serde_json::from_str(json).unwrap_or_else(|_| {
                panic!("{what} {json}: use the exec (JSON array) form, so the binary is PID 1 and gets SIGTERM")
            })
        };
        let entrypoint = exec_form("ENTRYPOINT", single("ENTRYPOINT "));
        let healthcheck_line = single("HEALTHCHECK ");
        let (_, cmd) = healthcheck_line
            .split_once("CMD ")
            .expect("HEALTHCHECK runs a CMD");
        let healthcheck = exec_form("HEALTHCHECK CMD", cmd.trim());

        Image {
            expose,
            env,
            uid: number(uid),
            gid: number(gid),
            entrypoint,
            healthcheck,
        }
    }

    fn env(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("the Dockerfile sets no ENV {key}"))
    }
}

/// Paths of the `warp::path!` filters inside `fn <name>` of src/routes/health.rs, e.g.
/// `["/health/ready", "/health"]` for `ready`.
fn health_routes(function: &str) -> Vec<String> {
    let source = read("src/routes/health.rs");
    let start = source
        .find(&format!("fn {function}("))
        .unwrap_or_else(|| panic!("src/routes/health.rs has no fn {function}"));
    let rest = &source[start + 3..];
    // Up to the next function, private or public.
    let end = ["\nfn ", "\npub fn "]
        .iter()
        .filter_map(|next| rest.find(next))
        .min()
        .unwrap_or(rest.len());
    let body = &rest[..end];
    let routes: Vec<String> = body
        .match_indices("warp::path!(")
        .map(|(i, m)| {
            let args = &body[i + m.len()..];
            let args = &args[..args.find(')').expect("path! is closed")];
            args.split('/')
                .map(|segment| format!("/{}", segment.trim().trim_matches('"')))
                .collect()
        })
        .collect();
    assert!(!routes.is_empty(), "no routes found in fn {function}");
    routes
}

// ---------------------------------------------------------------------------------------------
// Terraform: modules loaded from disk, instantiated with their inputs, evaluated as far as the
// inputs, defaults and locals allow (references to resources stay unevaluated).

/// A module directory instantiated with input values: the evaluation scope of its files.
struct Instance {
    /// e.g. `staging/module.app/module.service`, for messages.
    path: String,
    dir: PathBuf,
    body: Body,
    vars: Map<String, Value>,
    locals: Map<String, Value>,
}

fn parse_dir(dir: &Path) -> Body {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    files.sort();
    let mut structures = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let body =
            hcl::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        structures.extend(body.into_inner());
    }
    Body::from(structures)
}

fn functions(ctx: &mut Context) {
    // Enough of Terraform's library for the expressions checked here. jsonencode returns its
    // argument, so container definitions can be inspected as the structure they encode.
    fn identity(args: FuncArgs) -> Result<Value, String> {
        Ok(args.into_values().remove(0))
    }
    fn tostring(args: FuncArgs) -> Result<Value, String> {
        match args.into_values().remove(0) {
            Value::String(s) => Ok(Value::String(s)),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            other => Err(format!("tostring({other:?})")),
        }
    }
    ctx.declare_func("jsonencode", FuncDef::new(identity, [ParamType::Any]));
    ctx.declare_func("tostring", FuncDef::new(tostring, [ParamType::Any]));
}

impl Instance {
    fn root(name: &str) -> Instance {
        let dir = repo().join("terraform").join(name);
        let mut inputs = Map::new();
        let tfvars = dir.join("terraform.tfvars");
        if tfvars.exists() {
            let body = hcl::parse(&fs::read_to_string(&tfvars).unwrap()).unwrap();
            for attr in body.attributes() {
                let value = attr
                    .expr
                    .evaluate(&Context::new())
                    .unwrap_or_else(|e| panic!("{}: {e}", tfvars.display()));
                inputs.insert(attr.key().to_owned(), value);
            }
        }
        Instance::new(name.to_owned(), dir, inputs, &[])
    }

    /// `inputs` are the known input values; `unknown` names the inputs the caller sets to
    /// values only known at apply time (their defaults must not stand in for them).
    fn new(path: String, dir: PathBuf, inputs: Map<String, Value>, unknown: &[String]) -> Instance {
        let body = parse_dir(&dir);
        let mut vars = Map::new();
        for block in body
            .blocks()
            .filter(|b| b.identifier.as_str() == "variable")
        {
            let name = label(block, 0).to_owned();
            if unknown.contains(&name) {
                continue;
            }
            let value = inputs.get(&name).cloned().or_else(|| {
                attr(&block.body, "default").and_then(|e| e.evaluate(&Context::new()).ok())
            });
            if let Some(value) = value.filter(|v| !v.is_null()) {
                vars.insert(name, value);
            }
        }
        for name in inputs.keys() {
            assert!(
                vars.contains_key(name),
                "{path}: input {name} is not a variable of {}",
                dir.display()
            );
        }
        let mut instance = Instance {
            path,
            dir,
            body,
            vars,
            locals: Map::new(),
        };
        instance.evaluate_locals();
        instance
    }

    /// Locals may refer to each other: evaluate in rounds until no more become known.
    fn evaluate_locals(&mut self) {
        let definitions: Vec<(String, Expression)> = self
            .body
            .blocks()
            .filter(|b| b.identifier.as_str() == "locals")
            .flat_map(|b| b.body.attributes())
            .map(|a| (a.key().to_owned(), a.expr.clone()))
            .collect();
        loop {
            let mut progress = false;
            for (name, expr) in &definitions {
                if self.locals.contains_key(name) {
                    continue;
                }
                if let Ok(value) = expr.evaluate(&self.context()) {
                    self.locals.insert(name.clone(), value);
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn context(&self) -> Context<'static> {
        let mut ctx = Context::new();
        ctx.declare_var("var", Value::Object(self.vars.clone()));
        ctx.declare_var("local", Value::Object(self.locals.clone()));
        functions(&mut ctx);
        ctx
    }

    /// `expr` with everything that can be evaluated in this scope evaluated.
    fn eval(&self, expr: &Expression) -> Expression {
        let mut expr = expr.clone();
        let _unknown_references_stay = expr.evaluate_in_place(&self.context());
        expr
    }

    /// The instance of `module "<name>"` called from this one.
    fn module(&self, name: &str) -> Instance {
        let block = self
            .body
            .blocks()
            .find(|b| b.identifier.as_str() == "module" && label(b, 0) == name)
            .unwrap_or_else(|| panic!("{}: no module \"{name}\"", self.path));
        let source = attr(&block.body, "source")
            .and_then(|e| known(&self.eval(e)))
            .and_then(|v| v.as_str().map(str::to_owned))
            .expect("module source is a string");
        let mut inputs = Map::new();
        let mut unknown = Vec::new();
        for a in block.body.attributes() {
            if ["source", "depends_on", "providers", "count", "for_each"].contains(&a.key()) {
                continue;
            }
            match known(&self.eval(&a.expr)) {
                Some(value) => {
                    inputs.insert(a.key().to_owned(), value);
                }
                None => unknown.push(a.key().to_owned()),
            }
        }
        Instance::new(
            format!("{}/module.{name}", self.path),
            self.dir.join(source),
            inputs,
            &unknown,
        )
    }

    fn block(&self, kind: &str, type_: &str, name: &str) -> &Block {
        self.body
            .blocks()
            .find(|b| b.identifier.as_str() == kind && label(b, 0) == type_ && label(b, 1) == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {type_}.{name}", self.path))
    }

    fn resource(&self, type_: &str, name: &str) -> &Block {
        self.block("resource", type_, name)
    }

    /// The evaluated value of `attribute` (a dotted path through nested blocks, e.g.
    /// `health_check.path`) of a block, if it is known.
    fn value(&self, block: &Block, attribute: &str) -> Option<Value> {
        let (blocks, last) = match attribute.rsplit_once('.') {
            Some((blocks, last)) => (blocks.split('.').collect(), last),
            None => (Vec::new(), attribute),
        };
        let mut body = &block.body;
        for nested in blocks {
            body = &body
                .blocks()
                .find(|b| b.identifier.as_str() == nested)?
                .body;
        }
        known(&self.eval(attr(body, last)?))
    }

    fn int(&self, block: &Block, attribute: &str) -> i64 {
        self.value(block, attribute)
            .and_then(|v| v.as_i64())
            .unwrap_or_else(|| {
                panic!(
                    "{}: {attribute} of {} is not a known number",
                    self.path,
                    describe(block)
                )
            })
    }

    fn string(&self, block: &Block, attribute: &str) -> String {
        self.value(block, attribute)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| {
                panic!(
                    "{}: {attribute} of {} is not a known string",
                    self.path,
                    describe(block)
                )
            })
    }

    fn boolean(&self, block: &Block, attribute: &str) -> bool {
        self.value(block, attribute)
            .and_then(|v| v.as_bool())
            .unwrap_or_else(|| {
                panic!(
                    "{}: {attribute} of {} is not a known bool",
                    self.path,
                    describe(block)
                )
            })
    }
}

fn label(block: &Block, i: usize) -> &str {
    block.labels.get(i).map(|l| l.as_str()).unwrap_or("")
}

fn describe(block: &Block) -> String {
    let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
    format!("{} {}", block.identifier.as_str(), labels.join("."))
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| &a.expr)
}

/// The value of a fully evaluated expression; `None` while any part refers to something
/// only known at apply time.
fn known(expr: &Expression) -> Option<Value> {
    Some(match expr {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(*b),
        Expression::Number(n) => Value::Number(*n),
        Expression::String(s) => Value::String(s.clone()),
        Expression::Array(items) => Value::Array(items.iter().map(known).collect::<Option<_>>()?),
        Expression::Object(object) => {
            let mut map = Map::new();
            for (key, value) in object {
                map.insert(key_str(key)?.to_owned(), known(value)?);
            }
            Value::Object(map)
        }
        _ => return None,
    })
}

/// An object key that is a plain name or string.
fn key_str(key: &ObjectKey) -> Option<&str> {
    match key {
        ObjectKey::Identifier(id) => Some(id.as_str()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// Follows object keys and array indices through an evaluated expression, looking through
/// `jsonencode(...)` calls whose argument is only partly known.
fn at<'a>(expr: &'a Expression, path: &[&str]) -> Option<&'a Expression> {
    let expr = match expr {
        Expression::FuncCall(call) if call.name.name.as_str() == "jsonencode" => {
            call.args.first()?
        }
        other => other,
    };
    let Some((first, rest)) = path.split_first() else {
        return Some(expr);
    };
    let next = match expr {
        Expression::Array(items) => items.get(first.parse::<usize>().ok()?)?,
        Expression::Object(object) => object
            .iter()
            .find_map(|(k, v)| (key_str(k)? == *first).then_some(v))?,
        _ => return None,
    };
    at(next, rest)
}

fn at_value(expr: &Expression, path: &[&str]) -> Option<Value> {
    at(expr, path).and_then(known)
}

/// The environment's composition module, as its root calls it.
fn environment(name: &str) -> Instance {
    Instance::root(name).module("app")
}

/// The single container of the service module's task definition, evaluated.
fn container(service: &Instance) -> Expression {
    let task = service.resource("aws_ecs_task_definition", "app");
    let definitions =
        service.eval(attr(&task.body, "container_definitions").expect("container_definitions"));
    let containers = match at(&definitions, &[]) {
        Some(Expression::Array(items)) => items.clone(),
        other => panic!(
            "{}: container_definitions is not a list: {other:?}",
            service.path
        ),
    };
    assert_eq!(
        containers.len(),
        1,
        "{}: the task runs exactly one container",
        service.path
    );
    containers.into_iter().next().unwrap()
}

fn int_at(expr: &Expression, path: &[&str], what: &str) -> i64 {
    at_value(expr, path)
        .and_then(|v| v.as_i64())
        .unwrap_or_else(|| panic!("{what}: {} is not a known number", path.join(".")))
}

/// An env var of the container, if the task definition sets it.
fn container_env(container: &Expression, key: &str) -> Option<String> {
    let list = at_value(container, &["environment"])?;
    list.as_array()?.iter().find_map(|entry| {
        let entry = entry.as_object()?;
        (entry.get("name")?.as_str()? == key)
            .then(|| entry.get("value")?.as_str().map(str::to_owned))?
    })
}

// ---------------------------------------------------------------------------------------------
// The checks.

#[test]
fn the_image_serves_what_the_app_expects() {
    let image = Image::read();
    let listen = image.env("LISTEN_ADDR");
    let port: i64 = listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("LISTEN_ADDR {listen} has no port"));
    assert_eq!(port, image.expose, "LISTEN_ADDR's port and EXPOSE differ");
    assert!(
        listen.starts_with("0.0.0.0:") || listen.starts_with("[::]:"),
        "LISTEN_ADDR {listen} must listen on all interfaces in a container"
    );
    assert_eq!(
        image.env("DATA_DIR"),
        "/data",
        "DATA_DIR must be the EFS mount point"
    );
    assert_eq!(
        image.env("LOG_FORMAT"),
        "json",
        "production logs are JSON lines"
    );
    assert!(
        image.uid > 0 && image.gid > 0,
        "the image must not run as root"
    );
    let binary = &image.entrypoint[0];
    assert!(
        binary.starts_with('/'),
        "ENTRYPOINT must name the binary by absolute path"
    );
    assert_eq!(
        image.healthcheck,
        vec![binary.clone(), "healthcheck".to_owned()],
        "HEALTHCHECK must run the binary's healthcheck subcommand"
    );
    assert!(
        read("src/configuration.rs").contains("Healthcheck,"),
        "the app has no healthcheck subcommand any more"
    );
}

#[test]
fn task_definition_matches_the_image() {
    let image = Image::read();
    for env in ENVIRONMENTS {
        let service = environment(env).module("service");
        let container = container(&service);
        let what = format!("{}: container", service.path);

        assert_eq!(
            int_at(&container, &["portMappings", "0", "containerPort"], &what),
            image.expose,
            "{what}: containerPort != the image's EXPOSE"
        );
        assert_eq!(
            at_value(&container, &["essential"]),
            Some(Value::Bool(true)),
            "{what}: must be essential"
        );
        let command = at_value(&container, &["healthCheck", "command"])
            .expect("container healthCheck.command");
        let expected: Vec<Value> = ["CMD", &image.entrypoint[0], "healthcheck"]
            .iter()
            .map(|s| Value::from(*s))
            .collect();
        assert_eq!(
            command,
            Value::Array(expected),
            "{what}: healthCheck must run the image's binary with `healthcheck`"
        );
        for (key, value) in &image.env {
            if let Some(overridden) = container_env(&container, key) {
                assert_eq!(
                    &overridden, value,
                    "{what}: environment {key} contradicts the image"
                );
            }
        }
    }
}

#[test]
fn only_the_efs_mount_is_writable() {
    let image = Image::read();
    for env in ENVIRONMENTS {
        let service = environment(env).module("service");
        let container = container(&service);
        let what = format!("{}: container", service.path);
        assert_eq!(
            at_value(&container, &["readonlyRootFilesystem"]),
            Some(Value::Bool(true)),
            "{what}: the root file system must be read-only"
        );

        let mounts = at_value(&container, &["mountPoints"])
            .and_then(|v| v.as_array().cloned())
            .expect("mountPoints");
        assert_eq!(
            mounts.len(),
            1,
            "{what}: exactly one mount, the data directory"
        );
        let mount = mounts[0].as_object().unwrap();
        assert_eq!(
            mount["containerPath"].as_str(),
            Some(image.env("DATA_DIR")),
            "{what}: the mount must be at the image's DATA_DIR"
        );
        assert_eq!(
            mount["readOnly"].as_bool(),
            Some(false),
            "{what}: the data mount must be writable"
        );

        let task = service.resource("aws_ecs_task_definition", "app");
        let volumes: Vec<&Block> = task
            .body
            .blocks()
            .filter(|b| b.identifier.as_str() == "volume")
            .collect();
        assert_eq!(volumes.len(), 1, "{}: exactly one volume", service.path);
        let volume = volumes[0];
        assert_eq!(
            Some(service.string(volume, "name").as_str()),
            mount["sourceVolume"].as_str(),
            "{what}: mount and volume names differ"
        );
        assert_eq!(
            service.string(volume, "efs_volume_configuration.transit_encryption"),
            "ENABLED",
            "{}: EFS traffic must be TLS",
            service.path
        );
        assert_eq!(
            service.string(volume, "efs_volume_configuration.authorization_config.iam"),
            "ENABLED",
            "{}: EFS must authorise the task role",
            service.path
        );
        assert!(
            attr(
                &volume
                    .body
                    .blocks()
                    .next()
                    .unwrap()
                    .body
                    .blocks()
                    .next()
                    .unwrap()
                    .body,
                "access_point_id"
            )
            .is_some(),
            "{}: the volume must mount through the access point",
            service.path
        );
    }
}

#[test]
fn tasks_stop_only_after_in_flight_requests_finish() {
    let image = Image::read();
    for env in ENVIRONMENTS {
        let service = environment(env).module("service");
        let container = container(&service);
        let what = format!("{}: container", service.path);
        // Whatever the task or the image set, else the app's defaults.
        let setting = |key: &str, default: u64| -> i64 {
            container_env(&container, key)
                .or_else(|| image.env.get(key).cloned())
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|_| panic!("{what}: {key}={v} is not a number"))
                })
                .unwrap_or(default as i64)
        };
        let shutdown = setting("SHUTDOWN_TIMEOUT_SECS", DEFAULT_SHUTDOWN_TIMEOUT_SECS);
        let drain = setting("DRAIN_DELAY_SECS", 0);
        let stop_timeout = int_at(&container, &["stopTimeout"], &what);
        assert!(
            stop_timeout > drain + shutdown,
            "{what}: stopTimeout {stop_timeout}s must exceed the app's drain delay ({drain}s) plus shutdown timeout ({shutdown}s), or ECS SIGKILLs requests in flight"
        );
        assert!(
            stop_timeout <= FARGATE_MAX_STOP_TIMEOUT,
            "{what}: Fargate caps stopTimeout at 120s"
        );
    }
}

#[test]
fn service_rolls_out_without_downtime() {
    let image = Image::read();
    for env in ENVIRONMENTS {
        let app = environment(env);
        let service_module = app.module("service");
        let service = service_module.resource("aws_ecs_service", "app");
        let at = &service_module.path;

        assert_eq!(
            service_module.int(service, "deployment_minimum_healthy_percent"),
            100,
            "{at}: no old task may stop before its replacement is healthy"
        );
        assert_eq!(
            service_module.int(service, "deployment_maximum_percent"),
            200,
            "{at}: a whole new set of tasks must fit beside the old one"
        );
        assert!(
            service_module.boolean(service, "deployment_circuit_breaker.enable"),
            "{at}: circuit breaker off"
        );
        assert!(
            service_module.boolean(service, "deployment_circuit_breaker.rollback"),
            "{at}: circuit breaker must roll back"
        );
        assert!(
            service_module.boolean(service, "alarms.enable")
                && service_module.boolean(service, "alarms.rollback"),
            "{at}: deployment alarms must roll back"
        );
        assert!(
            service_module.int(service, "health_check_grace_period_seconds") > 0,
            "{at}: no health check grace period"
        );
        assert_eq!(
            service_module.string(service, "availability_zone_rebalancing"),
            "ENABLED",
            "{at}"
        );
        assert_eq!(
            service_module.string(service, "launch_type"),
            "FARGATE",
            "{at}"
        );
        assert_eq!(
            service_module.string(service, "deployment_controller.type"),
            "ECS",
            "{at}: rolling updates are the ECS controller's"
        );
        let platform = service_module.string(service, "platform_version");
        assert!(
            platform == "LATEST" || platform.as_str() >= "1.4.0",
            "{at}: EFS needs Fargate platform 1.4.0 or later, got {platform}"
        );
        assert!(
            !service_module.boolean(service, "network_configuration.assign_public_ip"),
            "{at}: tasks must not get public IPs"
        );
        assert_eq!(
            service_module.int(service, "load_balancer.container_port"),
            image.expose,
            "{at}: the load balancer must target the image's port"
        );

        let container = container(&service_module);
        assert_eq!(
            service_module.value(service, "load_balancer.container_name"),
            at_value(&container, &["name"]),
            "{at}: load_balancer.container_name is not the task's container"
        );

        let lifecycle = service
            .body
            .blocks()
            .find(|b| b.identifier.as_str() == "lifecycle")
            .expect("lifecycle block");
        let ignored = match attr(&lifecycle.body, "ignore_changes") {
            Some(Expression::Array(items)) => items
                .iter()
                .map(|e| match e {
                    Expression::Variable(v) => v.as_str().to_owned(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>(),
            other => panic!("{at}: ignore_changes must list attributes, got {other:?}"),
        };
        assert!(
            ignored.contains(&"task_definition".to_owned()),
            "{at}: the deploy workflow owns the task definition; Terraform must ignore it"
        );
    }
}

#[test]
fn three_zones_and_a_task_in_each() {
    for env in ENVIRONMENTS {
        let app = environment(env);
        let network = app.module("network");
        let zones: Vec<String> = network
            .vars
            .get("availability_zones")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_else(|| panic!("{}: availability_zones is not set", network.path))
            .iter()
            .map(|z| z.as_str().expect("zone names are strings").to_owned())
            .collect();
        let mut distinct = zones.clone();
        distinct.sort();
        distinct.dedup();
        assert!(
            zones.len() >= 3 && distinct.len() == zones.len(),
            "{}: three distinct zones needed, got {zones:?}",
            network.path
        );

        let service = app.module("service");
        for (block, attribute) in [
            (service.resource("aws_ecs_service", "app"), "desired_count"),
            (
                service.resource("aws_appautoscaling_target", "app"),
                "min_capacity",
            ),
        ] {
            let count = service.int(block, attribute);
            assert!(
                count >= zones.len() as i64,
                "{}: {attribute} {count} leaves a zone without a task",
                service.path
            );
        }

        // A mount target in every zone the tasks run in.
        let storage = app.module("storage");
        let by_az = storage.resource("aws_efs_mount_target", "this");
        let for_each = attr(&by_az.body, "for_each")
            .map(|e| format!("{e:?}"))
            .unwrap_or_default();
        assert!(
            for_each.contains("subnet_ids_by_az"),
            "{}: mount targets must be created per task subnet",
            storage.path
        );
    }
}

#[test]
fn load_balancer_checks_the_readiness_route() {
    let image = Image::read();
    let readiness = health_routes("ready");
    let liveness = health_routes("live");
    for env in ENVIRONMENTS {
        let app = environment(env);
        let lb = app.module("load_balancer");
        let tg = lb.resource("aws_lb_target_group", "app");
        let at = &lb.path;

        assert_eq!(
            lb.string(tg, "target_type"),
            "ip",
            "{at}: Fargate tasks register by IP"
        );
        assert_eq!(
            lb.int(tg, "port"),
            image.expose,
            "{at}: target group port != the image's EXPOSE"
        );
        let path = lb.string(tg, "health_check.path");
        assert!(
            readiness.contains(&path),
            "{at}: health check path {path} is not a readiness route of the app {readiness:?}"
        );
        assert!(
            !liveness.contains(&path),
            "{at}: {path} is the liveness route; the load balancer must check readiness"
        );
        assert_eq!(lb.string(tg, "health_check.matcher"), "200", "{at}");
        assert!(
            lb.int(tg, "health_check.interval") <= 15,
            "{at}: health check interval too long"
        );
        assert!(
            lb.int(tg, "health_check.healthy_threshold") <= 3,
            "{at}: healthy threshold too high"
        );
        assert!(
            lb.int(tg, "health_check.unhealthy_threshold") <= 3,
            "{at}: unhealthy threshold too high"
        );
        let delay = lb.int(tg, "deregistration_delay");
        assert!(
            (10..=30).contains(&delay),
            "{at}: deregistration delay {delay}s, want 10-30s"
        );

        let alb = lb.resource("aws_lb", "this");
        assert!(
            lb.boolean(alb, "drop_invalid_header_fields"),
            "{at}: drop invalid header fields"
        );

        let network = app.module("network");
        let ingress = network.resource("aws_vpc_security_group_ingress_rule", "tasks_from_alb");
        assert_eq!(
            network.int(ingress, "from_port"),
            image.expose,
            "{}: tasks admit the wrong port",
            network.path
        );
        assert_eq!(
            network.int(ingress, "to_port"),
            image.expose,
            "{}: tasks admit the wrong port",
            network.path
        );
    }
}

#[test]
fn efs_is_encrypted_and_owned_by_the_container_user() {
    let image = Image::read();
    for env in ENVIRONMENTS {
        let storage = environment(env).module("storage");
        let at = &storage.path;
        let fs = storage.resource("aws_efs_file_system", "this");
        assert!(
            storage.boolean(fs, "encrypted"),
            "{at}: EFS must be encrypted at rest"
        );
        assert_eq!(storage.string(fs, "throughput_mode"), "elastic", "{at}");

        let ap = storage.resource("aws_efs_access_point", "this");
        assert_eq!(
            storage.int(ap, "posix_user.uid"),
            image.uid,
            "{at}: access point uid != the image's USER"
        );
        assert_eq!(
            storage.int(ap, "posix_user.gid"),
            image.gid,
            "{at}: access point gid != the image's USER"
        );
        assert_eq!(
            storage.int(ap, "root_directory.creation_info.owner_uid"),
            image.uid,
            "{at}: creation_info owner uid"
        );
        assert_eq!(
            storage.int(ap, "root_directory.creation_info.owner_gid"),
            image.gid,
            "{at}: creation_info owner gid"
        );

        let policy = storage.block("data", "aws_iam_policy_document", "file_system");
        let statements: Vec<&Block> = policy
            .body
            .blocks()
            .filter(|b| b.identifier.as_str() == "statement")
            .collect();
        let denies_plain_nfs = statements.iter().any(|s| {
            storage.value(s, "effect") == Some(Value::from("Deny"))
                && storage.value(s, "condition.variable")
                    == Some(Value::from("aws:SecureTransport"))
                && storage.value(s, "condition.values")
                    == Some(Value::Array(vec![Value::from("false")]))
        });
        assert!(
            denies_plain_nfs,
            "{at}: the file system policy must deny non-TLS access"
        );
        for s in &statements {
            let actions = storage
                .value(s, "actions")
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            assert!(
                !actions.contains("ClientRootAccess"),
                "{at}: nobody needs root on the file system"
            );
        }
        let backup = storage.resource("aws_efs_backup_policy", "this");
        assert_eq!(
            storage.string(backup, "backup_policy.status"),
            "ENABLED",
            "{at}: EFS backups off"
        );
    }
}

#[test]
fn roots_pin_versions_and_lock_state() {
    for root in ["bootstrap", "staging", "production"] {
        let instance = Instance::root(root);
        let terraform = instance
            .body
            .blocks()
            .find(|b| b.identifier.as_str() == "terraform")
            .expect("terraform block");
        let required = instance.string(terraform, "required_version");
        assert!(
            required.starts_with("~>"),
            "{root}: pin required_version with ~>, got {required}"
        );
        let providers = terraform
            .body
            .blocks()
            .find(|b| b.identifier.as_str() == "required_providers")
            .expect("required_providers");
        let aws = instance.eval(attr(&providers.body, "aws").expect("aws provider requirement"));
        let version = at_value(&aws, &["version"])
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        assert!(
            version.starts_with("~> 6"),
            "{root}: pin the AWS provider to ~> 6.x, got {version:?}"
        );

        let provider = instance.block("provider", "aws", "");
        assert!(
            provider
                .body
                .blocks()
                .any(|b| b.identifier.as_str() == "default_tags"),
            "{root}: the provider needs default_tags"
        );

        if root != "bootstrap" {
            let backend = terraform
                .body
                .blocks()
                .find(|b| b.identifier.as_str() == "backend")
                .expect("backend");
            assert_eq!(
                label(backend, 0),
                "s3",
                "{root}: state belongs in the S3 bucket"
            );
            assert!(
                instance.boolean(backend, "use_lockfile"),
                "{root}: use S3-native state locking (use_lockfile = true)"
            );
            assert_eq!(
                instance.string(backend, "key"),
                format!("{root}/terraform.tfstate"),
                "{root}: each root its own state key"
            );
        }
    }
}

#[test]
fn the_image_repository_is_immutable_and_scanned() {
    let bootstrap = Instance::root("bootstrap");
    let ecr = bootstrap.resource("aws_ecr_repository", "app");
    assert_eq!(bootstrap.string(ecr, "image_tag_mutability"), "IMMUTABLE");
    assert!(bootstrap.boolean(ecr, "image_scanning_configuration.scan_on_push"));
}

#[test]
fn deploys_use_the_same_names_routes_and_rules() {
    let workflow = read(".github/workflows/deploy-environment.yml");
    let service = environment("production").module("service");
    let name = at_value(&container(&service), &["name"])
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap();
    assert!(
        workflow.contains(&format!("container-name: {name}")),
        "deploy-environment.yml must render the task definition's container {name}"
    );
    assert!(
        workflow.contains("wait-for-service-stability: true"),
        "the deploy must wait for the service to be stable"
    );
    assert!(
        workflow.contains("cancel-in-progress: false"),
        "a running deploy must never be cancelled"
    );
    assert!(
        workflow.contains("group: deploy-${{ inputs.environment }}"),
        "one deploy at a time per environment"
    );

    // The smoke test probes a real readiness route.
    let smoke = read(".github/scripts/smoke-test.sh");
    let readiness = health_routes("ready");
    assert!(
        readiness.iter().any(|route| smoke
            .lines()
            .any(|line| line.contains("curl") && line.contains(&format!("\"$base{route}\"")))),
        "smoke-test.sh must GET one of the readiness routes {readiness:?}"
    );

    // Every third-party action is pinned to a full commit SHA with its version beside it.
    for entry in fs::read_dir(repo().join(".github/workflows")).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("uses:") || l.starts_with("- uses:"))
        {
            let target = line.split("uses:").nth(1).unwrap().trim();
            if target.starts_with("./") {
                continue;
            }
            let (_, rest) = target
                .split_once('@')
                .unwrap_or_else(|| panic!("{}: {line}: unpinned", path.display()));
            let (sha, comment) = rest.split_once(" # ").unwrap_or((rest, ""));
            assert!(
                sha.len() == 40
                    && sha.chars().all(|c| c.is_ascii_hexdigit())
                    && comment.starts_with('v'),
                "{}: {line}: pin to a full commit SHA with `# vX.Y.Z`",
                path.display()
            );
        }
    }
}

#[test]
fn every_checkov_skip_has_a_reason_and_is_documented() {
    let config = read(".checkov.yaml");
    let docs = read("docs/deploying.md");
    let mut skips = 0;
    let mut in_skips = false;
    for line in config.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') {
            in_skips = line.starts_with("skip-check:");
            continue;
        }
        let Some(entry) = line.trim().strip_prefix("- ").filter(|_| in_skips) else {
            continue;
        };
        let (check, reason) = entry.split_once('#').unwrap_or((entry, ""));
        let check = check.trim();
        assert!(
            reason.trim().len() >= 20,
            ".checkov.yaml: {check} is skipped without a reason"
        );
        assert!(
            docs.contains(check),
            "docs/deploying.md does not list the checkov skip {check}"
        );
        skips += 1;
    }
    assert!(skips > 0, ".checkov.yaml: no skip-check list found");
}

#[test]
fn the_docker_build_context_has_every_file_the_build_reads() {
    // .dockerignore ignores everything (`*`) and lets back in `!path` entries.
    let ignore = read(".dockerignore");
    let admitted: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|p| p.trim_end_matches('/'))
        .collect();
    let is_admitted = |path: &str| {
        admitted
            .iter()
            .any(|a| path == *a || path.starts_with(&format!("{a}/")))
    };
    for needed in ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"] {
        assert!(is_admitted(needed), ".dockerignore leaves out {needed}");
    }

    // Files compiled into the binary with include_str!/include_bytes!.
    let mut pending = vec![repo().join("src")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let source = fs::read_to_string(&path).unwrap();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for (i, _) in source.match_indices(macro_name) {
                    let rest = &source[i + macro_name.len()..];
                    let included = &rest[..rest.find('"').unwrap()];
                    let mut resolved = path.parent().unwrap().to_path_buf();
                    for part in included.split('/') {
                        match part {
                            ".." => {
                                resolved.pop();
                            }
                            "." => {}
                            part => resolved.push(part),
                        }
                    }
                    let relative = resolved
                        .strip_prefix(repo())
                        .unwrap_or_else(|_| {
                            panic!("{} includes a file outside the repository", path.display())
                        })
                        .to_string_lossy()
                        .replace('\\', "/");
                    assert!(
                        is_admitted(&relative),
                        "{} compiles in {relative}, which .dockerignore keeps out of the image build",
                        path.display()
                    );
                }
            }
        }
    }
}
