//! Who may open a connection: the server-wide cap on open connections and the cap per client
//! IP address.
//!
//! Every accepted connection holds an [`Admitted`] ticket for life (it travels with the
//! connection when it is handed to another shard); dropping the ticket gives its place back.
//! The counts are shared by all shards, since SO_REUSEPORT spreads one client's connections
//! over them. The per-IP table is touched only on accept (or, for a trusted proxy's
//! connection, once the client's address is known) and close, never per message.
//!
//! A connection from a trusted proxy (`--trusted-proxies`) is counted in the total at accept
//! but per IP only once its client is known: from the PROXY header, else from the first
//! request's `X-Forwarded-For`, else it is the proxy's own ([`Admitted::attribute`]).

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
    /// The client's address once known; until then the trusted proxy's.
    client: IpAddr,
    state: Attribution,
}

/// Where a connection stands in the per-IP count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// Counted under `client`.
    Counted,
    /// Not counted per IP (no per-IP cap); `client` is final.
    Uncounted,
    /// From a trusted proxy, nothing read yet: a PROXY header may come first.
    AwaitingProxyHeader,
    /// From a trusted proxy, no PROXY header with an address: the first request's
    /// `X-Forwarded-For` names the client.
    AwaitingRequest,
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

    /// Take a place for a connection from `peer`, or say why there is none. A `trusted_proxy`
    /// peer's connection is counted per IP later, under its client ([`Admitted::attribute`]).
    pub fn admit(self: &Arc<Self>, peer: IpAddr, trusted_proxy: bool) -> Result<Admitted, Refusal> {
        let total = self.total.fetch_add(1, Ordering::AcqRel);
        if self.max_total > 0 && total >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::ServerFull);
        }
        let mut admitted = Admitted {
            admission: Arc::clone(self),
            client: peer,
            state: Attribution::AwaitingProxyHeader,
        };
        if !trusted_proxy {
            // On refusal, dropping `admitted` gives the total place back.
            admitted.attribute(peer)?;
        }
        Ok(admitted)
    }

    /// Count one more connection for `ip`, or refuse.
    fn count(&self, ip: IpAddr) -> Result<(), Refusal> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            if *count == 0 {
                per_ip.remove(&ip);
            }
            return Err(Refusal::TooManyFromAddress);
        }
        *count += 1;
        Ok(())
    }

    /// Open connections now, across all shards.
    #[cfg(test)]
    pub fn open_connections(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Admitted {
    /// Where the connection stands in the per-IP count.
    pub fn attribution(&self) -> Attribution {
        self.state
    }

    /// The client's address: final once [`Admitted::attribution`] is `Counted` or
    /// `Uncounted`; until then the trusted proxy's.
    pub fn client(&self) -> IpAddr {
        self.client
    }

    /// The connection belongs to `client` from now on: count it there, or refuse (the
    /// connection must then be closed, with [`Refusal::response`]). Called once; later calls
    /// change nothing.
    pub fn attribute(&mut self, client: IpAddr) -> Result<(), Refusal> {
        if matches!(self.state, Attribution::Counted | Attribution::Uncounted) {
            return Ok(());
        }
        self.client = client;
        if self.admission.max_per_ip == 0 {
            self.state = Attribution::Uncounted;
            return Ok(());
        }
        // Refused: stays uncounted (nothing to give back), and is closed by the caller.
        self.state = Attribution::Uncounted;
        self.admission.count(client)?;
        self.state = Attribution::Counted;
        Ok(())
    }

    /// No PROXY header named the client: wait for the first request's `X-Forwarded-For`.
    pub fn await_request(&mut self) {
        if self.state == Attribution::AwaitingProxyHeader {
            self.state = Attribution::AwaitingRequest;
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let admission = &self.admission;
        if self.state == Attribution::Counted {
            let ip = self.client;
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
        let first = admission.admit(a, false).unwrap();
        let _second = admission.admit(a, false).unwrap();
        assert_eq!(
            admission.admit(a, false).unwrap_err(),
            Refusal::TooManyFromAddress
        );
        let _third = admission.admit(b, false).unwrap();
        assert_eq!(admission.admit(b, false).unwrap_err(), Refusal::ServerFull);
        assert_eq!(admission.open_connections(), 3);
        drop(first);
        assert_eq!(admission.open_connections(), 2);
        assert!(admission.admit(a, false).is_ok());
        assert_eq!(admission.per_ip.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_trusted_proxys_connection_is_counted_under_its_client_once_known() {
        let admission = Admission::new(10, 1);
        let proxy: IpAddr = [10, 0, 0, 2].into();
        let client: IpAddr = [198, 51, 100, 4].into();
        // Many connections from the proxy: none counted per IP before attribution.
        let mut first = admission.admit(proxy, true).unwrap();
        let mut second = admission.admit(proxy, true).unwrap();
        assert_eq!(first.attribution(), Attribution::AwaitingProxyHeader);
        assert!(admission.per_ip.lock().unwrap().is_empty());
        first.attribute(client).unwrap();
        assert_eq!(first.attribution(), Attribution::Counted);
        assert_eq!(first.client(), client);
        // A second connection of the same client is over the cap of 1.
        assert_eq!(second.attribute(client), Err(Refusal::TooManyFromAddress));
        drop(second);
        assert_eq!(admission.per_ip.lock().unwrap().get(&client), Some(&1));
        // Attribution happens once.
        first.attribute(proxy).unwrap();
        assert_eq!(first.client(), client);
        drop(first);
        assert!(admission.per_ip.lock().unwrap().is_empty());
        assert_eq!(admission.open_connections(), 0);
    }

    /// Every connection holds one (idle connections must stay well under 2 KiB each): the
    /// client's address and its state fit where the optional address was before.
    #[test]
    fn a_ticket_stays_small() {
        assert!(std::mem::size_of::<Admitted>() <= 32);
    }

    #[test]
    fn zero_means_no_cap() {
        let admission = Admission::new(0, 0);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let held: Vec<_> = (0..1000)
            .map(|_| admission.admit(ip, false).unwrap())
            .collect();
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
