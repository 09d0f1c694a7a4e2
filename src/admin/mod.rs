//! The admin endpoint: a small HTTP server on its own listen address
//! (`[admin] listen`) for operators and monitoring, never on the SIP path.
//!
//! | path        | answer                                                          |
//! |-------------|-----------------------------------------------------------------|
//! | `/healthz`  | 200 while at least one CTI node is up, 503 otherwise; one line  |
//! | `/metrics`  | Prometheus text exposition format 0.0.4, names `ctigw_*`        |
//! | `/nodes`    | the CTI nodes as JSON: state, connection, counters              |
//! | `/sessions` | the open sessions as JSON: user, line, node, peer, age, Call-ID |
//!
//! GET and HEAD only (another method on one of these paths is a 405 with
//! `Allow: GET, HEAD`; another path a 404). One request per connection:
//! the request head is read into a fixed buffer of [`REQUEST_BUFFER`]
//! bytes (a larger head is a 431, a body a 413, a malformed head a 400)
//! within [`READ_TIMEOUT`], the answer is written and the connection
//! closed. At most [`MAX_CONNECTIONS`] are served at once; more are
//! closed as soon as they are accepted.
//!
//! The pure parts are here: [`http`] reads request heads and writes
//! response heads, [`render`] writes the pages from a view of the gateway.
//! The smol shell that accepts, reads and writes is
//! [`crate::io::admin`]. A page is rendered synchronously while the
//! gateway is borrowed, then written out after the borrow is released, so
//! a slow scraper never holds up SIP.

pub mod http;
pub mod render;

use std::time::Duration;

/// Bytes of the buffer a request head is read into; a longer head is a 431.
pub const REQUEST_BUFFER: usize = 2048;
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 4;
/// Time a client has to send its whole request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the whole answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time given to a client to close after the answer, while what it still
/// sends is read and dropped (so the answer is not lost to a reset).
pub const LINGER: Duration = Duration::from_secs(1);
