//! Black-box tests: the real `hello-birthday` binary, on port 0, over real sockets, each
//! with its own data directory. Set TEST_LOG=1 to see the servers' logs.

// The linearizability checker, shared by path with its own tests and the examples.
#[path = "../linearizability/checker/mod.rs"]
#[allow(dead_code, unused_imports)]
mod checker;
mod concurrency;
mod health;
mod hello;
mod helpers;
// Shared with examples/nemesis.rs, which uses parts these tests do not.
#[allow(dead_code)]
mod history;
mod hostile;
mod http;
mod lifecycle;
mod openapi;
