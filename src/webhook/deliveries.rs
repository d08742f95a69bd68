//! Delivery deduplication: each `webhook-id` handled once inside its window.

use std::collections::HashMap;
use std::sync::Mutex;

use super::WEBHOOK_TOLERANCE_SECS;

/// How long a delivery id is remembered: a delivery signed at `ts` verifies while
/// `|now - ts| <= tolerance`, and `ts` may be up to a tolerance ahead of its arrival.
pub(super) const REMEMBER_SECS: i64 = 2 * WEBHOOK_TOLERANCE_SECS + 1;

/// At most this many delivery ids are remembered at once. When every one is still inside its
/// window, new deliveries are answered 503 (and retried) rather than an id forgotten early.
pub(super) const MAX_DELIVERIES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeliveryState {
    InFlight,
    Done,
}

#[derive(Debug, Default)]
pub(super) struct DeliveryLog {
    /// Delivery id: its state and until when it is remembered. Nothing else is kept per
    /// delivery, so replays of a delivery that keeps failing cost no memory.
    entries: HashMap<String, (DeliveryState, i64)>,
    /// When expired entries are next swept out.
    next_sweep: i64,
    /// The last time a sweep ran (a full log sweeps at most once a second).
    last_sweep: i64,
}

impl DeliveryLog {
    fn sweep(&mut self, now: i64) {
        self.entries.retain(|_, (_, until)| *until > now);
        self.last_sweep = now;
        self.next_sweep = now.saturating_add(REMEMBER_SECS);
    }
}

/// Whether a delivery is new.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Begin {
    New,
    Duplicate,
    InFlight,
    Full,
}

/// Deliveries seen within the tolerance window, never evicted early.
#[derive(Debug, Default)]
pub(super) struct Deliveries(Mutex<DeliveryLog>);

impl Deliveries {
    /// Forgets every delivery (see `Webhooks::forget_deliveries`).
    #[cfg(any(test, feature = "__private"))]
    pub(super) fn forget(&self) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *log = DeliveryLog::default();
    }

    pub(super) fn begin(&self, id: &str, now: i64) -> Begin {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let full = log.entries.len() >= MAX_DELIVERIES;
        if now >= log.next_sweep || (full && now != log.last_sweep) {
            log.sweep(now);
        }
        match log.entries.get(id) {
            Some((DeliveryState::Done, until)) if *until > now => return Begin::Duplicate,
            Some((DeliveryState::InFlight, until)) if *until > now => return Begin::InFlight,
            _ => {}
        }
        if !log.entries.contains_key(id) && log.entries.len() >= MAX_DELIVERIES {
            return Begin::Full;
        }
        let until = now.saturating_add(REMEMBER_SECS);
        log.entries
            .insert(id.to_owned(), (DeliveryState::InFlight, until));
        Begin::New
    }

    /// Ends a delivery begun with [`begin`](Self::begin): remembered as done, or forgotten so
    /// that its retry runs again.
    pub(super) fn finish(&self, id: &str, done: bool) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if done {
            if let Some(entry) = log.entries.get_mut(id) {
                entry.0 = DeliveryState::Done;
            }
        } else {
            log.entries.remove(id);
        }
    }
}

/// Ends a delivery whatever happens to the request: a handler that panics, or a route future
/// dropped by a timeout, forgets the delivery, so that its retry is not refused as in flight.
pub(super) struct InFlight<'a> {
    pub(super) deliveries: &'a Deliveries,
    pub(super) id: &'a str,
    pub(super) done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.deliveries.finish(self.id, self.done);
    }
}
