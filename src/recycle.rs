//! A new connection takes the heap buffers of an ended one whose slot it reuses
//! (`flows::spare`): its sides' inboxes, handshake sightings and RTT box. Every
//! connection filled them, so each cost an allocation when it was opened and a free when
//! its slot was next reused; now the buffer moves, emptied, from one to the next.
//!
//! Only emptied buffers move, never values: what a connection records is what it was fed.

/// `new` takes `old`'s buffer, emptied, if it has none of its own yet.
pub fn reuse_vec<T>(new: &mut Vec<T>, old: &mut Vec<T>) {
    if new.capacity() == 0 && old.capacity() != 0 {
        old.clear();
        std::mem::swap(new, old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_buffer_moves_to_a_vector_without_one() {
        let mut old = vec![1u32, 2, 3];
        let address = old.as_ptr();
        let mut new = Vec::new();
        reuse_vec(&mut new, &mut old);
        assert!(new.is_empty());
        assert_eq!(new.as_ptr(), address);
        assert!(new.capacity() >= 3);
        assert_eq!(old.capacity(), 0);
    }

    #[test]
    fn a_vector_with_a_buffer_keeps_its_own_and_its_values() {
        let mut old = vec![1u32, 2, 3];
        let mut new = vec![7u32];
        reuse_vec(&mut new, &mut old);
        assert_eq!(new, vec![7]);
        assert_eq!(old, vec![1, 2, 3]);
    }
}
