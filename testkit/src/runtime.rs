//! One tokio runtime for the test kit's blocking calls.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// The test kit's one runtime, for its blocking calls to the stack's HTTP
/// APIs (an Iceberg catalog's, a Connect worker's); built
/// on first use, with one worker thread.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("millpond-testkit")
            .enable_all()
            .build()
            .expect("the test kit's runtime")
    })
}

/// Runs `future` to its end on the test kit's runtime. From synchronous
/// code only (a plain test, a benchmark, `spawn_blocking`): inside an async
/// context it panics, as every `block_on` does.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_from_several_threads_share_the_runtime() {
        let threads: Vec<_> = (0..4)
            .map(|i| {
                std::thread::spawn(move || {
                    block_on(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        i
                    })
                })
            })
            .collect();
        let done: Vec<i32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(done, [0, 1, 2, 3]);
    }
}
