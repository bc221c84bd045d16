#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e/tests/node.sh: the stack's node runs pods as a cluster does.
#
#   e2e/stack up && e2e/tests/node.sh
#
# On the real kubelet, containerd and runc of e2e/stack, with images built
# here (no registry):
#   * a Deployment of a local image becomes Ready through its readiness
#     probe; its Service answers on the ClusterIP from the host (kube-proxy);
#     `kubectl logs` and `kubectl exec` work;
#   * a pod reaches Kafka and the API server's `kubernetes` Service;
#   * runAsNonRoot / runAsUser and readOnlyRootFilesystem are enforced: a
#     write to `/` fails inside the pod, a write to its emptyDir works;
#   * Kafka TLS material, mounted from a Secret the way the operator mounts
#     it, is readable by the consumer's user;
#   * a memory limit is enforced: a pod that needs more is OOMKilled;
#   * deleting a pod sends SIGTERM and waits for the process within the
#     grace period;
#   * the operator and consumer images run as uid 65532 with nothing but
#     their binary as entrypoint.
# Works in a namespace of its own, deleted at the end.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_stack KAFKA_BOOTSTRAP_SERVERS MILLPOND_HOST_IP

NS="millpond-node-test-$$"
BUSYBOX=localhost/millpond-e2e/busybox:local
HOSTDIR=$(mktemp -d /tmp/millpond-node-test.XXXXXX)
chmod 777 "$HOSTDIR"

cleanup() {
    kubectl delete namespace "$NS" --timeout=60s >/dev/null 2>&1
    rm -rf "$HOSTDIR"
}
trap cleanup EXIT

kubectl create namespace "$NS" >/dev/null
k() { kubectl -n "$NS" "$@"; }

# A web server of the busybox image, as non-root with a read-only root.
k apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
      containers:
        - name: web
          image: $BUSYBOX
          imagePullPolicy: Never
          command: [sh, -c, 'mkdir -p /scratch/www && echo "hello from \$(hostname)" >/scratch/www/index.html && echo serving && exec httpd -f -p 8080 -h /scratch/www']
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
          securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
          volumeMounts: [{name: scratch, mountPath: /scratch}]
      volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
EOF

if k rollout status deployment/web --timeout=120s >/dev/null 2>&1; then
    pass "a Deployment of a locally built image becomes Ready through its HTTP readiness probe"
else
    fail "the web Deployment becomes Ready" "$(k get pods -o wide 2>&1)" "$(k describe pods 2>&1 | tail -20)"
    finish
    exit 1
fi
pod=$(k get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
pod_ip=$(k get pod "$pod" -o jsonpath='{.status.podIP}')
svc_ip=$(k get service web -o jsonpath='{.spec.clusterIP}')

check "the pod has an address of its own network namespace on the stack's bridge" "${MILLPOND_HOST_IP%.*}" "${pod_ip%.*}"
answers() { [[ $(curl -fsS --max-time 2 "http://$svc_ip/index.html") == "hello from $pod" ]]; }
if poll 30 answers; then
    pass "the Service answers on its ClusterIP $svc_ip from the host (kube-proxy)"
else
    fail "the Service answers on its ClusterIP" "$(curl -sS --max-time 2 "http://$svc_ip/index.html" 2>&1)"
fi
check "kubectl logs shows the container's output" "serving" "$(k logs "$pod" 2>&1)"
check "kubectl exec runs in the container as the pod's user" "65532:65532" "$(k exec "$pod" -- sh -c 'echo "$(id -u):$(id -g)"' 2>&1)"

# Writes: the root file system is read-only, the emptyDir is not.
root_write=$(k exec "$pod" -- sh -c 'echo x >/probe && echo written' 2>&1)
check_contains "a write to / fails inside the pod (readOnlyRootFilesystem)" "$root_write" "Read-only file system"
check "a write to the pod's emptyDir works" "written" \
    "$(k exec "$pod" -- sh -c 'echo x >/scratch/probe && echo written' 2>&1)"

# Reachability from inside the pod: Kafka on the host address, the API
# server through the `kubernetes` Service (in-cluster configuration).
kafka_host=${KAFKA_BOOTSTRAP_SERVERS%%,*}
check "the pod reaches Kafka at $kafka_host" "open" \
    "$(k exec "$pod" -- sh -c "nc -w 3 ${kafka_host%:*} ${kafka_host##*:} </dev/null && echo open" 2>&1)"
check "the pod reaches the API server through the kubernetes Service" "open" \
    "$(k exec "$pod" -- sh -c 'nc -w 3 "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT" </dev/null && echo open' 2>&1)"

# Kafka TLS material as the operator mounts it for the consumer
# (operator/src/build/env.rs, tls_volume): a projected Secret volume, files
# 0440, read by the pod's fsGroup 65532 on a read-only root.
ca_pem=$(openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj /CN=node-test-ca -days 1 2>/dev/null)
k create secret generic kafka-ca --from-literal=ca.crt="$ca_pem" >/dev/null
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: tls-reader}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  containers:
    - name: main
      image: $BUSYBOX
      imagePullPolicy: Never
      command: [sh, -c, 'stat -L -c "%a %g" /etc/millpond/kafka-tls/ca.crt && cat /etc/millpond/kafka-tls/ca.crt']
      securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: kafka-tls, mountPath: /etc/millpond/kafka-tls, readOnly: true}]
  volumes:
    - name: kafka-tls
      projected:
        defaultMode: 0440
        sources: [{secret: {name: kafka-ca, items: [{key: ca.crt, path: ca.crt}], optional: false}}]
EOF
pod_done() { [[ $(k get pod "$1" -o jsonpath='{.status.phase}') == "$2" ]]; }
if poll 60 pod_done tls-reader Succeeded; then
    check "a TLS Secret mounted as the operator mounts it is readable by the consumer's user (mode 440, group 65532)" \
        "440 65532
$ca_pem" "$(k logs tls-reader 2>&1)"
else
    fail "the TLS Secret volume is readable" "$(k logs tls-reader 2>&1)" "$(k get pod tls-reader -o yaml | tail -20)"
fi

# runAsNonRoot without a user: the image's user is root, so the kubelet refuses.
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: as-root}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true}
  containers: [{name: main, image: $BUSYBOX, imagePullPolicy: Never, command: [sleep, "60"]}]
EOF
refused() { [[ $(k get pod as-root -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}') == CreateContainerConfigError ]]; }
if poll 60 refused; then
    check_contains "runAsNonRoot refuses an image that would run as root" \
        "$(k get pod as-root -o jsonpath='{.status.containerStatuses[0].state.waiting.message}')" "runAsNonRoot"
else
    fail "runAsNonRoot refuses a root image" "$(k get pod as-root -o yaml | tail -30)"
fi

# A memory limit is a cgroup limit: 64 MiB in one buffer under a 32Mi limit.
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hungry}
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: $BUSYBOX
      imagePullPolicy: Never
      command: [sh, -c, 'dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived']
      resources: {limits: {memory: 32Mi}}
EOF
terminated() { [[ -n $(k get pod hungry -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}') ]]; }
if poll 60 terminated; then
    check "a pod that exceeds its 32Mi memory limit is OOMKilled" "OOMKilled" \
        "$(k get pod hungry -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}')"
else
    fail "the hungry pod ends" "$(k get pod hungry -o yaml | tail -30)"
fi

# Deleting a pod: SIGTERM, then the kubelet waits for the process (up to
# the grace period) before it is gone. The pod notes the signal on a
# hostPath and takes 3 s to stop.
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 30
  containers:
    - name: main
      image: $BUSYBOX
      imagePullPolicy: Never
      command: [sh, -c, 'trap "echo TERM >/host/signal; sleep 3; echo done >>/host/signal; exit 0" TERM; echo started >/host/signal; while true; do sleep 1; done']
      volumeMounts: [{name: host, mountPath: /host}]
  volumes: [{name: host, hostPath: {path: $HOSTDIR, type: Directory}}]
EOF
if k wait --for=condition=Ready pod/graceful --timeout=60s >/dev/null 2>&1; then
    started=$(date +%s%N)
    k delete pod graceful --timeout=60s >/dev/null 2>&1
    took_ms=$((($(date +%s%N) - started) / 1000000))
    check "deleting a pod sends SIGTERM and the process finishes its handler" "TERM done" \
        "$(tr '\n' ' ' <"$HOSTDIR/signal" | sed 's/ $//')"
    ((took_ms >= 3000 && took_ms < 30000)) &&
        pass "the kubelet waited for the process to stop (${took_ms} ms: its 3 s handler, within the 30 s grace period)" ||
        fail "the kubelet waits for the process" "deletion took ${took_ms} ms"
else
    fail "the graceful pod starts" "$(k get pod graceful -o yaml | tail -30)"
fi

# The product images: the entrypoint is the binary; it runs as 65532.
version=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' charts/millpond-operator/Chart.yaml)
for image in operator consumer; do
    k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $image-version}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true}
  containers:
    - name: main
      image: docker.io/millpond/$image:$version
      imagePullPolicy: Never
      args: [--version]
      securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
EOF
done
succeeded() { [[ $(k get pod "$1" -o jsonpath='{.status.phase}') == Succeeded ]]; }
for image in operator consumer; do
    if poll 60 succeeded "$image-version"; then
        check "the $image image runs millpond-$image as non-root on a read-only root" \
            "millpond-$image $version" "$(k logs "$image-version" 2>&1)"
    else
        fail "the $image image runs" "$(k get pod "$image-version" -o yaml 2>&1 | tail -25)"
    fi
done

finish
