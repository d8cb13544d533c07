//! How many calls a host has in flight: a fixed number of slots, handed out first
//! come, first served.
//!
//! Every call in flight holds resources of its own: in warden's process, one slot of
//! the engine's pooling allocator (a 4 GiB virtual reservation per linear memory, of
//! which only what the guest touches is resident); under `isolation = "process"`, one
//! worker process. [`CallSlots`] bounds them before warden asks wasmtime for an
//! instance or a worker, so a busy host makes callers wait in order instead of failing
//! them, and a call that cannot get a slot before its own deadline ends as a
//! `concurrency` limit: the host's load, never the plugin's fault.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// The slots of one host.
#[derive(Debug)]
pub(crate) struct CallSlots {
    capacity: u32,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    in_use: u32,
    next_ticket: u64,
    /// Tickets of the callers waiting, oldest first.
    waiting: VecDeque<u64>,
}

/// A slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    slots: &'a CallSlots,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.in_use = state.in_use.saturating_sub(1);
        // Every caller asleep on `changed` is in `waiting` (it queued under the lock
        // before it slept), so with nobody queued there is nobody to wake, and no
        // `futex` call on every call's way out.
        let queued = !state.waiting.is_empty();
        drop(state);
        if queued {
            self.slots.changed.notify_all();
        }
    }
}

impl CallSlots {
    /// `capacity` slots (at least one).
    pub(crate) fn new(capacity: u32) -> Self {
        CallSlots {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// How many slots there are.
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A slot, once every caller that came before has one and one is free; `None` when
    /// `deadline` passes first.
    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Option<Slot<'_>> {
        let mut state = self.lock();
        if state.waiting.is_empty() && state.in_use < self.capacity {
            state.in_use += 1;
            return Some(Slot { slots: self });
        }
        let ticket = state.next_ticket;
        state.next_ticket = state.next_ticket.wrapping_add(1);
        state.waiting.push_back(ticket);
        loop {
            if state.waiting.front() == Some(&ticket) && state.in_use < self.capacity {
                state.waiting.pop_front();
                state.in_use += 1;
                let more = !state.waiting.is_empty() && state.in_use < self.capacity;
                drop(state);
                if more {
                    // The next in line may take the next free slot.
                    self.changed.notify_all();
                }
                return Some(Slot { slots: self });
            }
            let now = Instant::now();
            match deadline {
                Some(deadline) if now >= deadline => {
                    state.waiting.retain(|t| *t != ticket);
                    drop(state);
                    // Whoever was behind this caller may now be first.
                    self.changed.notify_all();
                    return None;
                }
                Some(deadline) => {
                    state = match self.changed.wait_timeout(state, deadline - now) {
                        Ok((state, _)) => state,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
                None => {
                    state = match self.changed.wait(state) {
                        Ok(state) => state,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_caller_past_its_deadline_gives_up_and_the_slot_count_stays_right() {
        let slots = CallSlots::new(1);
        let held = slots.acquire(None).unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(slots.acquire(Some(soon)).is_none());
        drop(held);
        let again = slots.acquire(Some(Instant::now())).unwrap();
        drop(again);
        assert_eq!(slots.lock().in_use, 0);
        assert!(slots.lock().waiting.is_empty());
    }

    #[test]
    fn waiting_callers_are_served_in_the_order_they_came() {
        let slots = Arc::new(CallSlots::new(1));
        let held = slots.acquire(None).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..8 {
            let (mine, order) = (Arc::clone(&slots), Arc::clone(&order));
            threads.push(std::thread::spawn(move || {
                let _slot = mine.acquire(None).unwrap();
                order.lock().unwrap().push(i);
            }));
            // Each caller is queued before the next one starts.
            while slots.lock().waiting.len() < i + 1 {
                std::thread::yield_now();
            }
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }
}
