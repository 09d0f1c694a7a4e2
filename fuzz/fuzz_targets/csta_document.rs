//! One document into the CSTA parser. Whatever parses, written back in its
//! namespace, must parse to the same message.
#![no_main]

use ctigw::csta;
use ctigw::outbuf::OutBuf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = csta::parse(data) else { return };
    // Escaping CDATA text can grow it fivefold (& to &amp;).
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = OutBuf::new(&mut buf);
    doc.message.write(doc.namespace, &mut out).expect("fits 64 KiB");
    let again = csta::parse(out.as_bytes()).expect("what we write parses");
    assert_eq!(again, doc);
});
