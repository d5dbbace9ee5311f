//! A CRI v1 client for containerd over its unix socket: the runtime
//! service (sandboxes, containers, exec) and the image service, with
//! errors that name the call.
//!
//! The generated types and clients come from `k8s-cri` (the CRI
//! `api.proto`, tonic + prost); this module only connects, sets the
//! kubelet's message size limit, names the calls and times them
//! ([`metrics`]).

pub mod labels;
pub mod metrics;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as api;
pub use metrics::RuntimeMetrics;

/// The kubelet's limit for CRI messages (16 MiB): a node with many
/// containers lists more than tonic's 4 MiB default.
const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Deadline of ordinary calls; pulls, stops and execs get their own.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A CRI call failed.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("connect to the CRI socket {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("CRI {call}: {} ({:?})", status.message(), status.code())]
    Call {
        call: &'static str,
        #[source]
        status: Box<tonic::Status>,
    },
}

impl CriError {
    /// Whether the runtime said the object does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Call { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

/// A CRI call: the method's name (errors name it) and the kubelet's
/// `operation_type` for it (the metrics label it).
#[derive(Debug, Clone, Copy)]
enum Op {
    Version,
    Status,
    RunPodSandbox,
    StopPodSandbox,
    RemovePodSandbox,
    PodSandboxStatus,
    ListPodSandbox,
    CreateContainer,
    StartContainer,
    StopContainer,
    RemoveContainer,
    ListContainers,
    ContainerStatus,
    ExecSync,
    Exec,
    Attach,
    PortForward,
    ImageStatus,
    PullImage,
    ListImages,
    RemoveImage,
}

impl Op {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Version => ("Version", "version"),
            Self::Status => ("Status", "status"),
            Self::RunPodSandbox => ("RunPodSandbox", "run_podsandbox"),
            Self::StopPodSandbox => ("StopPodSandbox", "stop_podsandbox"),
            Self::RemovePodSandbox => ("RemovePodSandbox", "remove_podsandbox"),
            Self::PodSandboxStatus => ("PodSandboxStatus", "podsandbox_status"),
            Self::ListPodSandbox => ("ListPodSandbox", "list_podsandbox"),
            Self::CreateContainer => ("CreateContainer", "create_container"),
            Self::StartContainer => ("StartContainer", "start_container"),
            Self::StopContainer => ("StopContainer", "stop_container"),
            Self::RemoveContainer => ("RemoveContainer", "remove_container"),
            Self::ListContainers => ("ListContainers", "list_containers"),
            Self::ContainerStatus => ("ContainerStatus", "container_status"),
            Self::ExecSync => ("ExecSync", "exec_sync"),
            Self::Exec => ("Exec", "exec"),
            Self::Attach => ("Attach", "attach"),
            Self::PortForward => ("PortForward", "port_forward"),
            Self::ImageStatus => ("ImageStatus", "image_status"),
            Self::PullImage => ("PullImage", "pull_image"),
            Self::ListImages => ("ListImages", "list_images"),
            Self::RemoveImage => ("RemoveImage", "remove_image"),
        }
    }
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// The result of `ExecSync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A connection to a CRI runtime (cheap to clone: one HTTP/2 channel).
#[derive(Debug, Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    socket: PathBuf,
    metrics: Arc<RuntimeMetrics>,
}

impl Cri {
    /// Connects to the runtime listening on the unix socket `socket`.
    pub async fn connect(socket: &Path) -> Result<Self, CriError> {
        let path = socket.to_owned();
        // The URI is required by tonic but unused: the connector dials the socket.
        let channel =
            Endpoint::from_static("http://cri.invalid")
                .connect_timeout(Duration::from_secs(10))
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .map_err(|source| CriError::Connect {
                    socket: socket.to_owned(),
                    source,
                })?;
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            images: ImageServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            socket: socket.to_owned(),
            metrics: Arc::default(),
        })
    }

    /// How this client's calls went (counts, durations, failures).
    #[must_use]
    pub fn metrics(&self) -> &RuntimeMetrics {
        &self.metrics
    }

    /// Makes a call, timed and counted as `op`.
    async fn call<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CriError> {
        let (method, operation_type) = op.names();
        let start = Instant::now();
        let result = call.await;
        self.metrics
            .observe(operation_type, start.elapsed(), result.is_ok());
        result
            .map(tonic::Response::into_inner)
            .map_err(|status| CriError::Call {
                call: method,
                status: Box::new(status),
            })
    }

    /// The socket this client talks to.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    // ---- runtime ----

    pub async fn version(&self) -> Result<cri::VersionResponse, CriError> {
        self.call(
            Op::Version,
            self.runtime
                .clone()
                .version(request(cri::VersionRequest::default(), CALL_TIMEOUT)),
        )
        .await
    }

    /// The runtime's conditions (`RuntimeReady`, `NetworkReady`).
    pub async fn status(&self) -> Result<cri::RuntimeStatus, CriError> {
        let response = self
            .call(
                Op::Status,
                self.runtime
                    .clone()
                    .status(request(cri::StatusRequest { verbose: false }, CALL_TIMEOUT)),
            )
            .await?;
        Ok(response.status.unwrap_or_default())
    }

    /// Creates and starts a sandbox; returns its ID.
    pub async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String, CriError> {
        let response = self
            .call(
                Op::RunPodSandbox,
                self.runtime.clone().run_pod_sandbox(request(
                    cri::RunPodSandboxRequest {
                        config: Some(config),
                        runtime_handler: String::new(),
                    },
                    // Includes the CNI ADD and, on a cold node, the pause image.
                    Duration::from_secs(240),
                )),
            )
            .await?;
        Ok(response.pod_sandbox_id)
    }

    /// Stops every container of the sandbox and tears down its network
    /// (CNI DEL). Idempotent.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        self.call(
            Op::StopPodSandbox,
            self.runtime.clone().stop_pod_sandbox(request(
                cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.to_owned(),
                },
                CALL_TIMEOUT,
            )),
        )
        .await
        .map(drop)
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        self.call(
            Op::RemovePodSandbox,
            self.runtime.clone().remove_pod_sandbox(request(
                cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.to_owned(),
                },
                CALL_TIMEOUT,
            )),
        )
        .await
        .map(drop)
    }

    pub async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, CriError> {
        let response = self
            .call(
                Op::PodSandboxStatus,
                self.runtime.clone().pod_sandbox_status(request(
                    cri::PodSandboxStatusRequest {
                        pod_sandbox_id: id.to_owned(),
                        verbose: false,
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.status.unwrap_or_default())
    }

    pub async fn list_pod_sandboxes(
        &self,
        filter: Option<cri::PodSandboxFilter>,
    ) -> Result<Vec<cri::PodSandbox>, CriError> {
        let response = self
            .call(
                Op::ListPodSandbox,
                self.runtime
                    .clone()
                    .list_pod_sandbox(request(cri::ListPodSandboxRequest { filter }, CALL_TIMEOUT)),
            )
            .await?;
        Ok(response.items)
    }

    /// Creates a container in a sandbox; returns its ID.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let response = self
            .call(
                Op::CreateContainer,
                self.runtime.clone().create_container(request(
                    cri::CreateContainerRequest {
                        pod_sandbox_id: sandbox_id.to_owned(),
                        config: Some(config),
                        sandbox_config: Some(sandbox_config),
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), CriError> {
        self.call(
            Op::StartContainer,
            self.runtime.clone().start_container(request(
                cri::StartContainerRequest {
                    container_id: id.to_owned(),
                },
                CALL_TIMEOUT,
            )),
        )
        .await
        .map(drop)
    }

    /// Stops a container: SIGTERM (or the image's stop signal), SIGKILL
    /// after `grace`.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError> {
        let timeout = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        self.call(
            Op::StopContainer,
            self.runtime.clone().stop_container(request(
                cri::StopContainerRequest {
                    container_id: id.to_owned(),
                    timeout,
                },
                grace + CALL_TIMEOUT,
            )),
        )
        .await
        .map(drop)
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        self.call(
            Op::RemoveContainer,
            self.runtime.clone().remove_container(request(
                cri::RemoveContainerRequest {
                    container_id: id.to_owned(),
                },
                CALL_TIMEOUT,
            )),
        )
        .await
        .map(drop)
    }

    pub async fn list_containers(
        &self,
        filter: Option<cri::ContainerFilter>,
    ) -> Result<Vec<cri::Container>, CriError> {
        let response = self
            .call(
                Op::ListContainers,
                self.runtime
                    .clone()
                    .list_containers(request(cri::ListContainersRequest { filter }, CALL_TIMEOUT)),
            )
            .await?;
        Ok(response.containers)
    }

    pub async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, CriError> {
        let response = self
            .call(
                Op::ContainerStatus,
                self.runtime.clone().container_status(request(
                    cri::ContainerStatusRequest {
                        container_id: id.to_owned(),
                        verbose: false,
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.status.unwrap_or_default())
    }

    /// Runs `cmd` in a container and waits for it (at most `timeout`).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, CriError> {
        let response = self
            .call(
                Op::ExecSync,
                self.runtime.clone().exec_sync(request(
                    cri::ExecSyncRequest {
                        container_id: id.to_owned(),
                        cmd,
                        timeout: i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX),
                    },
                    timeout + Duration::from_secs(10),
                )),
            )
            .await?;
        Ok(ExecOutput {
            exit_code: response.exit_code,
            stdout: response.stdout,
            stderr: response.stderr,
        })
    }

    /// Prepares a streaming exec; returns the URL of the runtime's
    /// streaming server that serves it.
    pub async fn exec(&self, req: cri::ExecRequest) -> Result<String, CriError> {
        let response = self
            .call(
                Op::Exec,
                self.runtime.clone().exec(request(req, CALL_TIMEOUT)),
            )
            .await?;
        Ok(response.url)
    }

    /// Prepares a streaming attach; returns the streaming URL.
    pub async fn attach(&self, req: cri::AttachRequest) -> Result<String, CriError> {
        let response = self
            .call(
                Op::Attach,
                self.runtime.clone().attach(request(req, CALL_TIMEOUT)),
            )
            .await?;
        Ok(response.url)
    }

    /// Prepares port forwarding into a sandbox's network namespace;
    /// returns the streaming URL.
    pub async fn port_forward(
        &self,
        sandbox_id: &str,
        ports: Vec<i32>,
    ) -> Result<String, CriError> {
        let response = self
            .call(
                Op::PortForward,
                self.runtime.clone().port_forward(request(
                    cri::PortForwardRequest {
                        pod_sandbox_id: sandbox_id.to_owned(),
                        port: ports,
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.url)
    }

    // ---- images ----

    /// The image as the runtime has it, if present.
    pub async fn image_status(&self, image: &str) -> Result<Option<cri::Image>, CriError> {
        let response = self
            .call(
                Op::ImageStatus,
                self.images.clone().image_status(request(
                    cri::ImageStatusRequest {
                        image: Some(image_spec(image)),
                        verbose: false,
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.image)
    }

    /// Pulls an image; returns its reference (the image ID).
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<cri::AuthConfig>,
        sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let response = self
            .call(
                Op::PullImage,
                self.images.clone().pull_image(request(
                    cri::PullImageRequest {
                        image: Some(image_spec(image)),
                        auth,
                        sandbox_config,
                    },
                    Duration::from_secs(600),
                )),
            )
            .await?;
        Ok(response.image_ref)
    }

    pub async fn list_images(&self) -> Result<Vec<cri::Image>, CriError> {
        let response = self
            .call(
                Op::ListImages,
                self.images.clone().list_images(request(
                    cri::ListImagesRequest { filter: None },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.images)
    }

    pub async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        self.call(
            Op::RemoveImage,
            self.images.clone().remove_image(request(
                cri::RemoveImageRequest {
                    image: Some(image_spec(image)),
                },
                CALL_TIMEOUT,
            )),
        )
        .await
        .map(drop)
    }
}

fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_owned(),
        ..cri::ImageSpec::default()
    }
}
