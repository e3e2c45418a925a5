//! Who may open a connection: the server-wide cap on open connections and the cap per client
//! IP address.
//!
//! Every accepted connection holds an [`Admitted`] ticket for life (it travels with the
//! connection when it is handed to another shard); dropping the ticket gives its place back.
//! The counts are shared by all shards, since SO_REUSEPORT spreads one client's connections
//! over them. The per-IP table is touched only on accept and close, never per message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `max_connections` already.
    ServerFull,
    /// This client IP holds `max_connections_per_ip` already.
    TooManyFromAddress,
}

impl Refusal {
    /// The HTTP answer written (best effort) before the refused connection is closed.
    pub fn response(self) -> &'static [u8] {
        match self {
            Refusal::ServerFull => {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                  Content-Length: 27\r\nConnection: close\r\nRetry-After: 5\r\n\r\n\
                  too many connections, retry"
            }
            Refusal::TooManyFromAddress => {
                b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n\
                  Content-Length: 38\r\nConnection: close\r\nRetry-After: 5\r\n\r\n\
                  too many connections from this address"
            }
        }
    }
}

/// The shared connection counts and their caps (0 means no cap).
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place in the counts; given back on drop.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_ip,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Take a place for a connection from `ip`, or say why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let total = self.total.fetch_add(1, Ordering::AcqRel);
        if self.max_total > 0 && total >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::ServerFull);
        }
        if self.max_per_ip == 0 {
            return Ok(Admitted {
                admission: Arc::clone(self),
                ip: None,
            });
        }
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            drop(per_ip);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooManyFromAddress);
        }
        *count += 1;
        Ok(Admitted {
            admission: Arc::clone(self),
            ip: Some(ip),
        })
    }

    /// Open connections now, across all shards.
    #[cfg(test)]
    pub fn open_connections(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let admission = &self.admission;
        if let Some(ip) = self.ip {
            let mut per_ip = admission.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = per_ip.get_mut(&ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        admission.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_address_and_gives_places_back() {
        let admission = Admission::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Refusal::TooManyFromAddress);
        let _third = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).unwrap_err(), Refusal::ServerFull);
        assert_eq!(admission.open_connections(), 3);
        drop(first);
        assert_eq!(admission.open_connections(), 2);
        assert!(admission.admit(a).is_ok());
        assert_eq!(admission.per_ip.lock().unwrap().len(), 2);
    }

    #[test]
    fn zero_means_no_cap() {
        let admission = Admission::new(0, 0);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let held: Vec<_> = (0..1000).map(|_| admission.admit(ip).unwrap()).collect();
        assert_eq!(admission.open_connections(), 1000);
        drop(held);
        assert_eq!(admission.open_connections(), 0);
        assert!(admission.per_ip.lock().unwrap().is_empty());
    }

    #[test]
    fn refusals_are_complete_http_responses() {
        for refusal in [Refusal::ServerFull, Refusal::TooManyFromAddress] {
            let text = std::str::from_utf8(refusal.response()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(body.len(), length, "{text}");
        }
    }
}
