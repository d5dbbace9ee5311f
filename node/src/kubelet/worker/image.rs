//! Making a container's image present as its pull policy asks, with the
//! kubelet's `Pulling`, `Pulled` and `Failed` events.

use std::time::Instant;

use baton_apimachinery::events::EventType;
use k8s_openapi::api::core::v1::{Container as SpecContainer, Pod};

use crate::cri::api as cri;
use crate::kubelet::{Context, KubeletError};

/// Makes `image` present as the pull policy asks; returns when a pull ran
/// from and to.
pub(super) async fn ensure_image(
    ctx: &Context,
    pod: &Pod,
    c: &SpecContainer,
    image: &str,
    sandbox_config: &cri::PodSandboxConfig,
) -> Result<Option<(Instant, Instant)>, KubeletError> {
    let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
        if image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or(image).contains(':') {
            "Always".into()
        } else {
            "IfNotPresent".into()
        }
    });
    let present = ctx.cri.image_status(image).await?.is_some();
    match policy.as_str() {
        "Never" if !present => {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            ctx.recorder.record(
                pod,
                Some(&c.name),
                EventType::Warning,
                "ErrImageNeverPull",
                &message,
            );
            return Err(KubeletError::Image {
                image: image.to_owned(),
                message,
            });
        }
        "IfNotPresent" | "Never" if present => {
            ctx.recorder.record(
                pod,
                Some(&c.name),
                EventType::Normal,
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(None);
        }
        _ => {}
    }
    ctx.recorder.record(
        pod,
        Some(&c.name),
        EventType::Normal,
        "Pulling",
        &format!("Pulling image \"{image}\""),
    );
    let started = Instant::now();
    match ctx
        .cri
        .pull_image(image, None, Some(sandbox_config.clone()))
        .await
    {
        Ok(_) => {
            let finished = Instant::now();
            ctx.recorder.record(
                pod,
                Some(&c.name),
                EventType::Normal,
                "Pulled",
                &format!(
                    "Successfully pulled image \"{image}\" in {:.3}s",
                    (finished - started).as_secs_f64()
                ),
            );
            Ok(Some((started, finished)))
        }
        Err(err) => {
            ctx.recorder.record(
                pod,
                Some(&c.name),
                EventType::Warning,
                "Failed",
                &format!("Failed to pull image \"{image}\": {err}"),
            );
            Err(err.into())
        }
    }
}
