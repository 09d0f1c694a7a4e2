//! The fixed capacities of the board this build is for, read from
//! `board/<name>/capacities` by `build.rs` (`BOARD=<name>` or the target
//! triple picks the board). The gateway's tables are sized from these at
//! boot and never grow.

include!(concat!(env!("OUT_DIR"), "/board.rs"));
