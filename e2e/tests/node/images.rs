//! The project's images run on the node as the operator runs them: the
//! entrypoint is the program, as non-root on a read-only root.

use serde_json::json;

use crate::support::Scenario;
use crate::{app_version, create_pod, ended, logs, phase};

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn the_operator_and_consumer_images_run_their_program_as_non_root_on_a_read_only_root() {
    let s = Scenario::without_operator("node-images").await;
    let version = app_version();
    for image in ["operator", "consumer"] {
        create_pod(
            &s,
            json!({
                "metadata": {"name": format!("{image}-version")},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": true},
                    "containers": [{
                        "name": "main",
                        "image": format!("docker.io/millpond/{image}:{version}"),
                        "imagePullPolicy": "Never",
                        "args": ["--version"],
                        "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            }),
        )
        .await;
    }
    for image in ["operator", "consumer"] {
        let name = format!("{image}-version");
        let pod = ended(&s, &name).await;
        assert_eq!(
            (phase(&pod), logs(&s, &name)),
            (Some("Succeeded"), format!("millpond-{image} {version}\n")),
            "the {image} image runs millpond-{image} --version as non-root on a read-only root: \
             phase and what it printed"
        );
    }
}
