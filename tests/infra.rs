//! The deployment, checked where it meets the app: the facts that the Terraform in terraform/,
//! the Dockerfile and the source must agree on (the port, the readiness route, the container
//! user, the data directory, the binary, the environment variables, the shutdown timing), the
//! deploy workflow and the checkov skips. (That the docker build context holds every file the
//! build reads is shown by the build itself: scripts/container/build.sh, in CI.)
//!
//! Everything that is Terraform alone (rolling-deploy percentages, circuit breaker, health
//! check timings, deregistration delay, EFS encryption and access point, zones, IAM, ECR) is
//! asserted by Terraform itself, in terraform/**/tests/*.tftest.hcl: `terraform test` plans each
//! root as committed, and each module, against a mock AWS provider (offline:
//! `bash scripts/terraform-offline/run.sh`). Those tests see only the module they plan: not the
//! values a parent passes to its child modules, nor `lifecycle`, `terraform` or `backend`
//! blocks. The few checks of those stay here.
//!
//! The Terraform is parsed with `hcl-rs`, not evaluated: only literal locals and the text of a
//! few expressions are read. The app's facts come from the app itself, never from its source
//! text: the readiness and liveness routes from the constants its filters are tested against
//! (`hello_birthday::routes`), the environment variables and their defaults from its clap
//! definition (`configuration::environment()`), the port, data directory,
//! user and entrypoint from the Dockerfile.
//!
//! Run alone with `cargo test --test infra`.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use clap::CommandFactory;
use hcl::eval::{Context, Evaluate};
use hcl::{Block, Body, Expression, ObjectKey, Value};
use hello_birthday::configuration;
use hello_birthday::routes::{LIVE_PATH, READY_PATHS};

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

/// The environment variables the app reads, as its own clap definition (and log filter)
/// describe them.
fn app_env_vars() -> Vec<String> {
    configuration::environment()
        .into_iter()
        .map(|setting| setting.name)
        .collect()
}

/// The numeric default of the setting read from `env`, as clap applies it.
fn app_default(env: &str) -> i64 {
    let setting = configuration::environment()
        .into_iter()
        .find(|setting| setting.name == env)
        .unwrap_or_else(|| panic!("the app reads no {env}"));
    let default = setting
        .default
        .unwrap_or_else(|| panic!("{env} has no default"));
    default
        .parse()
        .unwrap_or_else(|_| panic!("{env}'s default {default} is not a number"))
}

// ---------------------------------------------------------------------------------------------
// Terraform, parsed (not evaluated).

/// The .tf files of one directory under terraform/, as one body.
struct Module {
    dir: &'static str,
    body: Body,
}

impl Module {
    fn load(dir: &'static str) -> Module {
        let path = repo().join("terraform").join(dir);
        let mut files: Vec<PathBuf> = fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "tf"))
            .collect();
        files.sort();
        let mut structures = Vec::new();
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            let body = hcl::parse(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
            structures.extend(body.into_inner());
        }
        Module {
            dir,
            body: Body::from(structures),
        }
    }

    /// The block `identifier "labels[0]" "labels[1]" { ... }`.
    fn block(&self, identifier: &str, labels: &[&str]) -> &Block {
        self.body
            .blocks()
            .find(|b| {
                b.identifier.as_str() == identifier
                    && b.labels
                        .iter()
                        .map(|l| l.as_str())
                        .eq(labels.iter().copied())
            })
            .unwrap_or_else(|| panic!("terraform/{}: no {identifier} {labels:?}", self.dir))
    }

    /// This module's locals that are literals, by name.
    fn locals(&self) -> hcl::Map<String, Value> {
        self.body
            .blocks()
            .filter(|b| b.identifier.as_str() == "locals")
            .flat_map(|b| b.body.attributes())
            .filter_map(|a| Some((a.key().to_owned(), a.expr.evaluate(&Context::new()).ok()?)))
            .collect()
    }

    /// The value of `local.<name>`, which must be a literal.
    fn local(&self, name: &str) -> Value {
        self.locals()
            .swap_remove(name)
            .unwrap_or_else(|| panic!("terraform/{}: no literal local.{name}", self.dir))
    }

    /// A context in which this module's literal locals can be referenced.
    fn context(&self) -> Context<'static> {
        let mut ctx = Context::new();
        ctx.declare_var("local", Value::Object(self.locals()));
        ctx
    }

    /// The text of the expression a `module` block passes as `input`, e.g.
    /// `local.container_port`.
    fn module_input(&self, module: &str, input: &str) -> String {
        attr(&self.block("module", &[module]).body, input)
            .unwrap_or_else(|| panic!("terraform/{}: module {module} gets no {input}", self.dir))
            .to_string()
    }
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| &a.expr)
}

fn child<'a>(body: &'a Body, identifier: &str) -> Option<&'a Block> {
    body.blocks().find(|b| b.identifier.as_str() == identifier)
}

fn int(value: &Value, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value:?}"))
}

fn string<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

/// The field `key` of an object expression.
fn field<'a>(object: &'a Expression, key: &str) -> Option<&'a Expression> {
    let Expression::Object(object) = object else {
        return None;
    };
    object.iter().find_map(|(k, v)| {
        let name = match k {
            ObjectKey::Identifier(id) => id.as_str(),
            ObjectKey::Expression(Expression::String(s)) => s.as_str(),
            _ => return None,
        };
        (name == key).then_some(v)
    })
}

/// The environment the service module's app container sets: name => literal value (`None`
/// where a variable decides it). The container is the first object inside
/// `container_definitions = jsonencode([{ ... }, ...])`: terraform/modules/service/tests
/// asserts that the first is the app and the only essential one.
fn task_environment(service: &Module) -> BTreeMap<String, Option<String>> {
    let task = service.block("resource", &["aws_ecs_task_definition", "app"]);
    let Some(Expression::FuncCall(call)) = attr(&task.body, "container_definitions") else {
        panic!("terraform/modules/service: container_definitions is not jsonencode([...])");
    };
    let Some(Expression::Array(containers)) = call.args.first() else {
        panic!("terraform/modules/service: container_definitions is not jsonencode([...])");
    };
    let Some(Expression::Array(entries)) = containers.first().and_then(|c| field(c, "environment"))
    else {
        return BTreeMap::new();
    };
    let ctx = service.context();
    let literal = |entry, key| {
        field(entry, key)
            .and_then(|e| e.evaluate(&ctx).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    entries
        .iter()
        .map(|entry| {
            let name = literal(entry, "name").expect("environment entries have a literal name");
            (name, literal(entry, "value"))
        })
        .collect()
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
    let known = app_env_vars();
    for key in image.env.keys() {
        assert!(
            known.contains(key),
            "the Dockerfile sets ENV {key}, which the app does not read"
        );
    }
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
        configuration::Cli::command()
            .find_subcommand("healthcheck")
            .is_some(),
        "the app has no healthcheck subcommand any more"
    );
}

/// terraform/modules/environment names the app's facts once, as locals, and hands them to the
/// modules; the modules' own tests show each input reaching its resource.
#[test]
fn the_environment_module_passes_the_images_facts() {
    let image = Image::read();
    let env = Module::load("modules/environment");

    let port = int(&env.local("container_port"), "local.container_port");
    assert_eq!(
        port, image.expose,
        "terraform/modules/environment: container_port is not the image's EXPOSE"
    );
    assert_eq!(
        int(&env.local("container_uid"), "local.container_uid"),
        image.uid,
        "terraform/modules/environment: container_uid is not the image's USER (the EFS access point forces it on every file)"
    );
    assert_eq!(
        int(&env.local("container_gid"), "local.container_gid"),
        image.gid,
        "terraform/modules/environment: container_gid is not the image's USER group"
    );

    let readiness = READY_PATHS;
    let liveness = [LIVE_PATH];
    let path = env.local("readiness_path");
    let path = string(&path, "local.readiness_path");
    assert!(
        readiness.contains(&path),
        "terraform/modules/environment: readiness_path {path} is not a readiness route of the app {readiness:?}"
    );
    assert!(
        !liveness.contains(&path),
        "terraform/modules/environment: {path} is the liveness route; the load balancer must check readiness"
    );

    // `terraform test` cannot see what a module passes to its children: these inputs are read
    // here, and the child modules' tests assert that each reaches its resource.
    for (module, input, expected) in [
        ("network", "container_port", "local.container_port"),
        ("load_balancer", "container_port", "local.container_port"),
        ("load_balancer", "health_check_path", "local.readiness_path"),
        ("service", "container_port", "local.container_port"),
        ("storage", "posix_uid", "local.container_uid"),
        ("storage", "posix_gid", "local.container_gid"),
        // One task per zone: terraform/modules/environment validates min_tasks against the zones.
        ("service", "desired_count", "var.min_tasks"),
        ("service", "min_capacity", "var.min_tasks"),
        (
            "service",
            "private_subnet_ids",
            "module.network.private_subnet_ids",
        ),
        (
            "storage",
            "subnet_ids_by_az",
            "module.network.private_subnet_ids_by_az",
        ),
    ] {
        assert_eq!(
            env.module_input(module, input),
            expected,
            "terraform/modules/environment: module {module} must get {input} = {expected}"
        );
    }
}

/// terraform/modules/service/tests asserts that the rendered container mounts the data volume
/// at local.data_path and runs `local.binary healthcheck` as its health check.
#[test]
fn the_task_definition_runs_the_image() {
    let image = Image::read();
    let service = Module::load("modules/service");
    assert_eq!(
        string(&service.local("data_path"), "local.data_path"),
        image.env("DATA_DIR"),
        "terraform/modules/service: the EFS volume is not mounted at the image's DATA_DIR"
    );
    assert_eq!(
        string(&service.local("binary"), "local.binary"),
        image.entrypoint[0],
        "terraform/modules/service: the container health check must run the image's binary"
    );

    let known = app_env_vars();
    for (key, value) in task_environment(&service) {
        assert!(
            known.contains(&key),
            "terraform/modules/service: the task sets {key}, which the app does not read"
        );
        if let (Some(value), Some(image_value)) = (value, image.env.get(&key)) {
            assert_eq!(
                &value, image_value,
                "terraform/modules/service: environment {key} contradicts the image"
            );
        }
    }
}

/// ECS deregisters a task, waits the target group's deregistration delay, sends SIGTERM, then
/// SIGKILL after stopTimeout. The app needs its drain delay plus its shutdown timeout.
#[test]
fn tasks_stop_only_after_in_flight_requests_finish() {
    let image = Image::read();
    let service = Module::load("modules/service");
    let environment = task_environment(&service);
    // Whatever the task or the image set, else the app's default.
    let setting = |key: &str| -> i64 {
        environment
            .get(key)
            .cloned()
            .flatten()
            .or_else(|| image.env.get(key).cloned())
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{key}={v} is not a number"))
            })
            .unwrap_or_else(|| app_default(key))
    };
    let drain = setting("DRAIN_DELAY_SECS");
    let shutdown = setting("SHUTDOWN_TIMEOUT_SECS");
    // terraform/modules/service/tests asserts that the container's stopTimeout is this local.
    let stop_timeout = int(&service.local("stop_timeout"), "local.stop_timeout");
    assert!(
        stop_timeout > drain + shutdown,
        "terraform/modules/service: stopTimeout {stop_timeout}s must exceed the app's drain delay ({drain}s) plus shutdown timeout ({shutdown}s), or ECS SIGKILLs requests in flight"
    );

    // A request still waiting for storage when the ALB gives up on the connection is lost to
    // the client: the app's storage deadline must come first.
    let storage_ms = setting("STORAGE_TIMEOUT_MS");
    let lb = Module::load("modules/load-balancer");
    let idle = attr(
        &lb.block("resource", &["aws_lb", "this"]).body,
        "idle_timeout",
    )
    .and_then(|e| e.evaluate(&Context::new()).ok())
    .map(|v| int(&v, "idle_timeout"))
    .expect("terraform/modules/load-balancer: aws_lb.this sets a literal idle_timeout");
    assert!(
        storage_ms < idle * 1000,
        "the app's storage timeout ({storage_ms} ms) must be below the load balancer's idle timeout ({idle} s)"
    );
}

#[test]
fn deploys_use_the_same_names_routes_and_rules() {
    // The deploy workflow owns the running task definition; Terraform must not take it back.
    let service = Module::load("modules/service");
    let service = service.block("resource", &["aws_ecs_service", "app"]);
    let ignored = child(&service.body, "lifecycle")
        .and_then(|l| attr(&l.body, "ignore_changes"))
        .map(|e| match e {
            Expression::Array(items) => items.iter().map(|i| i.to_string()).collect(),
            other => vec![other.to_string()],
        })
        .unwrap_or_default();
    assert!(
        ignored.iter().any(|i| i == "task_definition"),
        "terraform/modules/service: the deploy workflow owns the task definition; aws_ecs_service.app must ignore_changes = [task_definition]"
    );

    let workflow = read(".github/workflows/deploy-environment.yml");
    // The name itself: the roots' tests assert output container_name, the service module's
    // that the container bears it.
    assert!(
        workflow.contains("container-name: ${{ steps.terraform.outputs.container }}")
            && workflow.contains("output -raw container_name"),
        "deploy-environment.yml must render the container the root's output container_name names"
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
    let readiness = READY_PATHS;
    assert!(
        readiness.iter().any(|route| smoke
            .lines()
            .any(|line| line.contains("curl") && line.contains(&format!("\"$base{route}\"")))),
        "smoke-test.sh must GET one of the readiness routes {readiness:?}"
    );

    // zizmor (scripts/check-infra.sh, its unpinned-uses audit) refuses every action that is not
    // pinned to a full commit SHA; the version beside each pin is for readers and Dependabot.
    for entry in fs::read_dir(repo().join(".github/workflows")).unwrap() {
        let path = entry.unwrap().path();
        for line in fs::read_to_string(&path).unwrap().lines() {
            let Some((_, target)) = line.split_once("uses:") else {
                continue;
            };
            assert!(
                target.trim().starts_with("./") || target.contains(" # v"),
                "{}: {line}: name the pinned version beside the SHA (`# vX.Y.Z`)",
                path.display()
            );
        }
    }
}

/// `terraform test` cannot see `terraform { ... }` or `provider` blocks.
#[test]
fn roots_pin_versions_and_lock_state() {
    for root in ["bootstrap", "staging", "production"] {
        let module = Module::load(root);
        let terraform = module.block("terraform", &[]);
        let ctx = Context::new();
        let required = attr(&terraform.body, "required_version")
            .and_then(|e| e.evaluate(&ctx).ok())
            .unwrap_or(Value::Null);
        assert!(
            required.as_str().is_some_and(|v| v.starts_with("~>")),
            "{root}: pin required_version with ~>, got {required:?}"
        );
        let aws = child(&terraform.body, "required_providers")
            .and_then(|p| attr(&p.body, "aws"))
            .and_then(|e| e.evaluate(&ctx).ok())
            .unwrap_or(Value::Null);
        let version = aws
            .as_object()
            .and_then(|o| o.get("version"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(
            version.starts_with("~> 6"),
            "{root}: pin the AWS provider to ~> 6.x, got {version:?}"
        );
        assert!(
            child(&module.block("provider", &["aws"]).body, "default_tags").is_some(),
            "{root}: the provider needs default_tags"
        );

        if root == "bootstrap" {
            continue;
        }
        let backend = child(&terraform.body, "backend").expect("backend");
        assert_eq!(
            backend.labels.first().map(|l| l.as_str()),
            Some("s3"),
            "{root}: state belongs in the S3 bucket"
        );
        let setting = |key: &str| attr(&backend.body, key).and_then(|e| e.evaluate(&ctx).ok());
        assert_eq!(
            setting("use_lockfile"),
            Some(Value::Bool(true)),
            "{root}: use S3-native state locking (use_lockfile = true)"
        );
        // terraform/bootstrap's roles are scoped to exactly these keys.
        assert_eq!(
            setting("key"),
            Some(Value::from(format!("{root}/terraform.tfstate"))),
            "{root}: each root its own state key"
        );
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
