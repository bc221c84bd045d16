//! A web server of a locally built image: Ready through its readiness
//! probe, reached through its Service from the host, `kubectl logs` and
//! `kubectl exec` into it, and what it reaches from inside.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ListParams, PostParams};
use serde_json::json;

use crate::support::{eventually, Scenario};
use crate::{kubectl, stack_env, Output, BUSYBOX};

/// The web server's pod, running and Ready.
struct Web {
    pod: String,
    pod_ip: Ipv4Addr,
    service_ip: String,
}

/// A Deployment `web` of one busybox httpd, non-root (65532) on a
/// read-only root with an emptyDir at `/scratch`, Ready through an HTTP
/// readiness probe, and its Service `web` on port 80; waits until it rolled
/// out.
async fn web(s: &Scenario) -> Web {
    let serve = r#"mkdir -p /scratch/www && echo "hello from $(hostname)" >/scratch/www/index.html && echo serving && exec httpd -f -p 8080 -h /scratch/www"#;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
                    "containers": [{
                        "name": "web",
                        "image": BUSYBOX,
                        "imagePullPolicy": "Never",
                        "command": ["sh", "-c", serve],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1},
                        "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                    }],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
        },
    }))
    .expect("a Deployment");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }))
    .expect("a Service");
    s.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap_or_else(|e| panic!("creating Deployment web: {e}"));
    let service = s
        .api::<Service>()
        .create(&PostParams::default(), &service)
        .await
        .unwrap_or_else(|e| panic!("creating Service web: {e}"));
    s.rolled_out("web", Duration::from_secs(120)).await;

    let pods = s
        .api::<Pod>()
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap_or_else(|e| panic!("listing the web pods: {e}"));
    let pod = pods.items.first().expect("the web pod");
    let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
    Web {
        pod: pod.metadata.name.clone().expect("a pod name"),
        pod_ip: pod_ip
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("the web pod's IP: {pod_ip:?}")),
        service_ip: service
            .spec
            .and_then(|s| s.cluster_ip)
            .expect("a ClusterIP"),
    }
}

/// `kubectl exec <pod> -- sh -c <script>`.
fn exec(s: &Scenario, pod: &str, script: &str) -> Output {
    kubectl(s, &["exec", pod, "--", "sh", "-c", script])
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_deployment_of_a_local_image_becomes_ready_and_its_service_answers_on_the_cluster_ip() {
    let s = Scenario::without_operator("node-web").await;
    let web = web(&s).await;

    let host: Ipv4Addr = stack_env("MILLPOND_HOST_IP")
        .parse()
        .expect("MILLPOND_HOST_IP is an IPv4 address");
    assert!(
        web.pod_ip != host && web.pod_ip.octets()[..3] == host.octets()[..3],
        "the pod has an address of its own network namespace on the stack's bridge: pod {}, host {host}",
        web.pod_ip
    );

    let url = format!("http://{}/index.html", web.service_ip);
    let want = format!("hello from {}\n", web.pod);
    eventually(
        Duration::from_secs(30),
        &format!("the Service answers on its ClusterIP {url} from the host (kube-proxy)"),
        || async {
            let response = reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.text().await.map_err(|e| e.to_string())?;
            if body == want {
                Ok(())
            } else {
                Err(format!("answered {status} {body:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn kubectl_logs_and_exec_reach_the_container_which_runs_as_the_pods_user_on_a_read_only_root()
{
    let s = Scenario::without_operator("node-exec").await;
    let web = web(&s).await;

    let logs = kubectl(&s, &["logs", &web.pod]);
    assert_eq!(
        (logs.ok, logs.stdout.as_str()),
        (true, "serving\n"),
        "kubectl logs shows the container's output ({})",
        logs.stderr
    );
    let id = exec(&s, &web.pod, r#"echo "$(id -u):$(id -g)""#);
    assert_eq!(
        (id.ok, id.stdout.as_str()),
        (true, "65532:65532\n"),
        "kubectl exec runs in the container as the pod's user ({})",
        id.stderr
    );

    let root = exec(&s, &web.pod, "echo x >/probe && echo written");
    assert!(
        !root.ok && root.stdout.is_empty() && root.stderr.contains("Read-only file system"),
        "a write to / fails inside the pod (readOnlyRootFilesystem): exit ok {}, out {:?}, err {:?}",
        root.ok,
        root.stdout,
        root.stderr
    );
    let scratch = exec(&s, &web.pod, "echo x >/scratch/probe && echo written");
    assert_eq!(
        (scratch.ok, scratch.stdout.as_str()),
        (true, "written\n"),
        "a write to the pod's emptyDir works ({})",
        scratch.stderr
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_pod_reaches_kafka_and_the_api_server_through_the_kubernetes_service() {
    let s = Scenario::without_operator("node-reach").await;
    let web = web(&s).await;

    let servers = stack_env("KAFKA_BOOTSTRAP_SERVERS");
    let first = servers.split(',').next().unwrap_or_default();
    let (host, port) = first
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("KAFKA_BOOTSTRAP_SERVERS {servers} is host:port"));
    let kafka = exec(
        &s,
        &web.pod,
        &format!("nc -w 3 {host} {port} </dev/null && echo open"),
    );
    assert_eq!(
        (kafka.ok, kafka.stdout.as_str()),
        (true, "open\n"),
        "the pod reaches Kafka at {first} ({})",
        kafka.stderr
    );
    let api = exec(
        &s,
        &web.pod,
        r#"nc -w 3 "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT" </dev/null && echo open"#,
    );
    assert_eq!(
        (api.ok, api.stdout.as_str()),
        (true, "open\n"),
        "the pod reaches the API server through the kubernetes Service ({})",
        api.stderr
    );
}
