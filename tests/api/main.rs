//! Black-box tests: the real `hello-birthday` binary, on port 0, over real sockets, each
//! with its own data directory. Set TEST_LOG=1 to see the servers' logs.

mod concurrency;
mod health;
mod hello;
mod helpers;
mod http;
mod lifecycle;
mod openapi;
