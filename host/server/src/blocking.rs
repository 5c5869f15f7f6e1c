//! The one way off the async executor: synthesis and plugin calls are
//! synchronous and CPU-bound, so they run on Tokio's blocking pool and never
//! stall the threads that serve requests (and `/healthz`).

/// Runs blocking work on Tokio's blocking pool, inside the caller's tracing
/// span. A panic in `f` is resumed in the caller.
pub async fn off_executor<R, F>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
