//! Allocations the flow table gets back from its caller and reuses: the boxes of ended
//! connections and the vector they are handed out in.
//!
//! Freeing them instead is what glibc pays for most in a run: a 1 KB slot freed next to
//! free memory coalesces into a chunk of 64 KiB or more, and such a free first consolidates
//! every fast bin (`malloc_consolidate`, FASTBIN_CONSOLIDATION_THRESHOLD in glibc's
//! malloc.c), a walk over cold memory; a sweep ends thousands of connections at once.

use super::{Finished, Slot};

/// Emptied slots kept for new connections, at most: about 1 KB each, plus what the ended
/// connection in it still holds until the slot is reused (a few MB in all).
const MAX_SPARE_SLOTS: usize = 4096;

/// Slots and a vector of ended connections, ready for reuse.
#[derive(Debug, Default)]
pub(super) struct Spares {
    #[allow(clippy::vec_box)] // the boxes are what is kept: they go back into the table
    slots: Vec<Box<Slot>>,
    ended: Vec<Finished>,
}

impl Spares {
    /// `slot` in a box: a spare one if there is one (its old connection dropped in place,
    /// once `slot`'s has taken the buffers it would allocate again).
    pub(super) fn boxed(&mut self, mut slot: Slot) -> Box<Slot> {
        match self.slots.pop() {
            Some(mut spare) => {
                slot.conn.reuse_buffers(&mut spare.conn);
                *spare = slot;
                spare
            }
            None => Box::new(slot),
        }
    }

    /// An empty vector for the next connections to end.
    pub(super) fn ended(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.ended)
    }

    /// Take back a vector of connections the caller is done with: their slots up to the
    /// cap, and the vector.
    pub(super) fn keep(&mut self, mut done: Vec<Finished>) {
        let room = MAX_SPARE_SLOTS - self.slots.len();
        for Finished(slot) in done.drain(..).take(room) {
            self.slots.push(slot);
        }
        // (past the cap, `drain` drops the rest)
        if done.capacity() > self.ended.capacity() {
            self.ended = done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Connection;
    use crate::model::RoleRule;

    fn slot(id: u64) -> Slot {
        let conn = Connection::new(id, (1, 1), (2, 2), RoleRule::Syn, 0, None);
        Slot {
            conn,
            client_side: 0,
            tunnel: 0,
        }
    }

    #[test]
    fn a_kept_slot_is_reused_with_the_new_connection() {
        let mut spares = Spares::default();
        let first = spares.boxed(slot(1));
        let address = std::ptr::from_ref::<Slot>(&first);
        let mut done = spares.ended();
        done.push(Finished(first));
        spares.keep(done);
        let second = spares.boxed(slot(2));
        assert_eq!(std::ptr::from_ref::<Slot>(&second), address);
        assert_eq!(second.conn.id, 2);
        assert!(spares.ended().capacity() >= 1);
    }

    #[test]
    fn spare_slots_stop_at_the_cap() {
        let mut spares = Spares::default();
        let done: Vec<Finished> = (0..MAX_SPARE_SLOTS as u64 + 10)
            .map(|id| Finished(Box::new(slot(id))))
            .collect();
        spares.keep(done);
        assert_eq!(spares.slots.len(), MAX_SPARE_SLOTS);
        let more = vec![Finished(Box::new(slot(0)))];
        spares.keep(more);
        assert_eq!(spares.slots.len(), MAX_SPARE_SLOTS);
    }
}
