//! A TCP stream whose reads carry the kernel's receive time: `SO_TIMESTAMPNS` is switched on
//! for the socket and every read is a `recvmsg` whose `SCM_TIMESTAMPNS` control message (a
//! CLOCK_REALTIME software timestamp taken when the kernel received the data, before any
//! process got round to reading it) is kept in [`ArrivalClock`]. Writes pass straight through.
//!
//! TCP is a byte stream, so the kernel gives one timestamp per `recvmsg` call: that of the last
//! segment the call copied out. A WebSocket frame may span segments and reads; this module
//! defines the *arrival* of a frame as the timestamp of the `recvmsg` that completed it. The
//! WebSocket reader only reads when its buffer holds no complete frame, so when it yields a
//! frame, the most recent read is the one that brought the frame's last byte, and
//! [`ArrivalClock::last`] read at that moment is the frame's arrival. Several frames completed
//! by one read share its timestamp (the kernel's stamp of the last segment in it; an earlier
//! frame in that read arrived no later than that).
//!
//! It never interprets the bytes it reads, and it never blocks: readiness comes from tokio.

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The kernel receive time of the most recent read that returned data, in nanoseconds since
/// the Unix epoch (CLOCK_REALTIME, the clock the senders stamp with); 0 until the first.
#[derive(Clone, Default)]
pub struct ArrivalClock(Arc<AtomicU64>);

impl ArrivalClock {
    /// The timestamp of the latest `recvmsg` that returned data, or None before any did or if
    /// the kernel attached none.
    pub fn last(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

/// A [`TcpStream`] read with `recvmsg` + `SO_TIMESTAMPNS`.
pub struct TimestampedStream {
    inner: TcpStream,
    clock: ArrivalClock,
}

impl TimestampedStream {
    /// Switches on `SO_TIMESTAMPNS` for `inner`; the returned clock follows its reads.
    pub fn new(inner: TcpStream) -> io::Result<(TimestampedStream, ArrivalClock)> {
        setsockopt(&inner.as_fd(), sockopt::ReceiveTimestampns, &true)?;
        let clock = ArrivalClock::default();
        Ok((
            TimestampedStream {
                inner,
                clock: clock.clone(),
            },
            clock,
        ))
    }

    /// One non-blocking `recvmsg` into `buf`; records the timestamp when there is one.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let msg = recvmsg::<SockaddrStorage>(
            self.inner.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        )?;
        let n = msg.bytes;
        if n > 0 {
            // A read without a stamp (data received before the kernel switched timestamping
            // on, which it does shortly after the first socket asks) clears the clock rather
            // than leave an older read's time in it.
            let mut ns = 0;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        ns = (ts.tv_sec() as u64)
                            .saturating_mul(1_000_000_000)
                            .saturating_add(ts.tv_nsec() as u64);
                    }
                }
            }
            self.clock.0.store(ns, Ordering::Relaxed);
        }
        Ok(n)
    }
}

impl AsyncRead for TimestampedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match this
                .inner
                .try_io(Interest::READABLE, || this.recv(unfilled))
            {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TimestampedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes written into a loopback connection come out of the stream unchanged, and the read
    /// carries a kernel timestamp taken between the write and the read.
    #[tokio::test]
    async fn a_read_carries_the_kernel_receive_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let (mut stream, clock) = TimestampedStream::new(client).unwrap();
        assert_eq!(clock.last(), None);
        // The kernel switches receive timestamping on from deferred work after the first
        // socket asks for it; packets received before then carry no stamp.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;

        let before = crate::proto::now_ns();
        server.write_all(b"hello").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).await.unwrap();
        let read_at = crate::proto::now_ns();

        assert_eq!(&buf[..n], b"hello");
        let arrival = clock.last().expect("a kernel timestamp");
        assert!(
            arrival >= before,
            "arrival {arrival} before the write {before}"
        );
        // The data waited 20 ms in the socket before the read: the stamp is the kernel's,
        // not the reader's.
        assert!(
            read_at - arrival >= 15_000_000,
            "arrival {arrival} is not ≥ 15 ms before the read {read_at}"
        );
    }
}
