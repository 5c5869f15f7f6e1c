//! WASI for plugins, with every wait bounded by the call's deadline.
//!
//! Components built for `wasm32-wasip2` (and by componentize-py or
//! componentize-js) import WASI p2 whether they use it or not, so the host
//! links all of it — with nothing granted (`store.rs`: no files, no
//! environment, no sockets, closed stdin, captured stdout/stderr, coarse
//! clocks).
//!
//! Epoch interruption stops Wasm code at the deadline, but not a host call
//! that waits: `monotonic-clock.subscribe-duration(1 h)` followed by
//! `pollable.block()` would hold the thread for an hour. Every WASI function
//! that can wait is in `wasi:io` — `poll`, `pollable.block` and the
//! `blocking-*` stream operations (and stream drops, which may flush) — so
//! those are re-linked here (shadowing wasmtime-wasi's) to run wasmtime-wasi's
//! own implementation under a timeout that ends at the call's deadline. Every
//! other WASI function returns without waiting (no resource that could make
//! it wait can be obtained: no preopens, no sockets, no name lookup).

use std::future::Future;
use std::time::Instant;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::io::streams as async_streams;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi::runtime::in_tokio;

use super::store::CallState;

/// The error a waiting host call returns when the call's deadline passes; it
/// traps the call, which is then reported as a timeout.
#[derive(Debug)]
pub(crate) struct DeadlineReached;

impl std::fmt::Display for DeadlineReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a WASI call waited past the plugin call's deadline")
    }
}

impl std::error::Error for DeadlineReached {}

/// What the re-linked `wasi:io` functions see of a call's store.
pub(crate) struct BoundedIo<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) deadline: Instant,
    pub(crate) deadline_hit: &'a mut bool,
}

struct BoundedIoData;

impl HasData for BoundedIoData {
    type Data<'a> = BoundedIo<'a>;
}

/// Link WASI p2 with its waiting functions bounded by the call's deadline.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    poll::add_to_linker::<CallState, BoundedIoData>(linker, CallState::wasi_io)?;
    streams::add_to_linker::<CallState, BoundedIoData>(linker, CallState::wasi_io)?;
    linker.allow_shadowing(false);
    Ok(())
}

impl BoundedIo<'_> {
    /// Run `f` (one of wasmtime-wasi's async implementations) until it ends
    /// or the call's deadline passes.
    fn wait<R>(
        &mut self,
        f: impl for<'t> FnOnce(
            &'t mut ResourceTable,
        ) -> std::pin::Pin<Box<dyn Future<Output = R> + Send + 't>>,
    ) -> Result<R, DeadlineReached> {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let table = &mut *self.table;
        match in_tokio(async move { tokio::time::timeout_at(deadline, f(table)).await }) {
            Ok(r) => Ok(r),
            Err(_elapsed) => {
                *self.deadline_hit = true;
                Err(DeadlineReached)
            }
        }
    }

    fn wait_stream<R: Send>(
        &mut self,
        f: impl for<'t> FnOnce(
            &'t mut ResourceTable,
        )
            -> std::pin::Pin<Box<dyn Future<Output = StreamResult<R>> + Send + 't>>,
    ) -> StreamResult<R> {
        self.wait(f)
            .unwrap_or_else(|e| Err(StreamError::Trap(wasmtime::Error::new(e))))
    }
}

impl poll::Host for BoundedIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        self.wait(|t| Box::pin(async_poll::Host::poll(t, pollables)))?
    }
}

impl poll::HostPollable for BoundedIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        poll::HostPollable::ready(&mut *self.table, pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        self.wait(|t| Box::pin(async_poll::HostPollable::block(t, pollable)))?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(&mut *self.table, pollable)
    }
}

impl streams::Host for BoundedIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(&mut *self.table, err)
    }
}

impl streams::HostOutputStream for BoundedIo<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        self.wait(|t| Box::pin(async_streams::HostOutputStream::drop(t, stream)))?
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(&mut *self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(&mut *self.table, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        self.wait_stream(|t| {
            Box::pin(async_streams::HostOutputStream::blocking_write_and_flush(
                t, stream, bytes,
            ))
        })
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        self.wait_stream(|t| {
            Box::pin(
                async_streams::HostOutputStream::blocking_write_zeroes_and_flush(t, stream, len),
            )
        })
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(&mut *self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(&mut *self.table, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(&mut *self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        self.wait_stream(|t| Box::pin(async_streams::HostOutputStream::blocking_flush(t, stream)))
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(&mut *self.table, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        self.wait_stream(|t| {
            Box::pin(async_streams::HostOutputStream::blocking_splice(
                t, dst, src, len,
            ))
        })
    }
}

impl streams::HostInputStream for BoundedIo<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        self.wait(|t| Box::pin(async_streams::HostInputStream::drop(t, stream)))?
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(&mut *self.table, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        self.wait_stream(|t| {
            Box::pin(async_streams::HostInputStream::blocking_read(
                t, stream, len,
            ))
        })
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(&mut *self.table, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        self.wait_stream(|t| {
            Box::pin(async_streams::HostInputStream::blocking_skip(
                t, stream, len,
            ))
        })
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(&mut *self.table, stream)
    }
}
