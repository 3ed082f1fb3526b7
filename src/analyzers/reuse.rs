//! Application keep-alive reuse: the HTTP/1.x tracker fed the in-order stream data.

use super::http::AppTracker;
use super::{Analyzer, ConnEvent, Finish};
use crate::model::{ConnectionRecord, Role};

/// Feeds `AppTracker` both directions' data and gaps.
#[derive(Debug, Default)]
pub struct ReuseAnalyzer {
    app: AppTracker,
}

impl ReuseAnalyzer {
    /// See `AppTracker::reuse_box`.
    pub fn reuse_box(&mut self, old: &mut ReuseAnalyzer) {
        self.app.reuse_box(&mut old.app);
    }
}

impl Analyzer for ReuseAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, event: &ConnEvent<'_>) {
        match *event {
            ConnEvent::StreamData {
                role,
                ts_ns,
                length,
                data,
            } => self.app.data(role == Role::Client, ts_ns, length, data),
            ConnEvent::StreamGap { role, .. } => self.app.gap(role == Role::Client),
            _ => {}
        }
    }

    fn wants_bytes(&self, role: Role) -> bool {
        self.app.wants(role == Role::Client)
    }

    fn finish(&mut self, record: &mut ConnectionRecord, _how: &Finish) {
        record.reuse = self.app.take_result();
    }
}
