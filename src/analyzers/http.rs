//! Application keep-alive reuse: HTTP/1.x framing (RFC 9112) and request/response turns.
//! (Owned by the HTTP work.)

use crate::model::Reuse;

/// Counts requests, responses and the idle time between them for one connection.
#[derive(Debug, Default)]
pub struct AppTracker {}

impl AppTracker {
    /// Whether the next in-order data of this direction should come with its bytes.
    pub fn wants(&self, client: bool) -> bool {
        let _ = client;
        todo!("http")
    }

    /// In-order stream data of one direction (`payload` None: not captured or not wanted).
    pub fn data(&mut self, client: bool, ts_ns: i64, length: u32, payload: Option<&[u8]>) {
        let _ = (client, ts_ns, length, payload);
        todo!("http")
    }

    /// Bytes of one direction missing from the capture.
    pub fn gap(&mut self, client: bool) {
        let _ = client;
        todo!("http")
    }

    pub fn result(&self) -> Reuse {
        todo!("http")
    }
}
