//! A byte stream into the framer, whole and split where the first byte
//! says: both must yield the same frames, or fail the same way.
#![no_main]

use ctigw::sip::{Frame, StreamBuffer};
use libfuzzer_sys::fuzz_target;

fn frames(data: &[u8], step: usize) -> (Vec<(u8, usize)>, bool) {
    let mut buf = StreamBuffer::<2048>::new();
    let mut out = Vec::new();
    for piece in data.chunks(step.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let n = buf.push(rest);
            rest = &rest[n..];
            loop {
                match buf.next(1024) {
                    Ok(Some(frame)) => out.push(match frame {
                        Frame::Message(m) => (0, m.len()),
                        Frame::Ping => (1, 4),
                        Frame::Pong => (2, 2),
                        Frame::Invalid { bytes, .. } => (3, bytes.len()),
                    }),
                    Ok(None) => break,
                    Err(_) => return (out, true),
                }
            }
            if n == 0 {
                return (out, true);
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let whole = frames(data, data.len());
    let split = frames(data, usize::from(step % 32) + 1);
    assert_eq!(whole, split);
});
