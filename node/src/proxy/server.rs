//! A minimal HTTP/1.1 server over hyper for the proxy's endpoints
//! (metrics, healthz, health-check node ports): each request is answered by
//! a plain function of its method and path, no body is read.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

/// An answer: status, content type, extra headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    #[must_use]
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    #[must_use]
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        )
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut builder = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, self.content_type);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(self.body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

/// Answers a request from its method and path (with query).
pub type Handler = Arc<dyn Fn(&Method, &str) -> Answer + Send + Sync>;

/// Serves `listener` until the returned future is dropped.
pub async fn serve(listener: TcpListener, handler: Handler) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!(%error, "accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
                let method = req.method().clone();
                let handler = Arc::clone(&handler);
                async move {
                    // Handlers may wait for the dataplane's lock.
                    let answer = tokio::task::spawn_blocking(move || handler(&method, &path))
                        .await
                        .unwrap_or_else(|_| {
                            Answer::new(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "text/plain; charset=utf-8",
                                "internal error\n",
                            )
                        });
                    Ok::<_, Infallible>(answer.into_response())
                }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, %error, "connection");
            }
        });
    }
}

/// Binds `addr` and serves it in a task.
pub async fn spawn(addr: SocketAddr, handler: Handler) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, handler));
    Ok(bound)
}
