#!/usr/bin/env bash
# Offline validation of everything under deploy/, charts/pulsehooks and docker-compose.yml
# (called by `make check`). Needs Go; no cluster, no Docker engine, no network once the Go
# module cache holds helm's and chartcheck's modules.
#
#   1. installs helm ${HELM_VERSION} into ${TOOLS_BIN:-.tools/bin} when missing (go install);
#   2. helm lint --strict on the chart with its default values and deploy/values-production.yaml;
#   3. helm template with both (and with the attempt log's persistence off); deploy/chartcheck
#      decodes every manifest strictly into its Kubernetes type and asserts, for Deployments and
#      StatefulSets alike, the hardened securityContext, probes, resources, PDBs, Services, HPAs,
#      NetworkPolicies, ConfigMap and Secret wiring, and the StatefulSet's claim templates;
#   4. values the schema or the templates must reject are rejected;
#   5. docker-compose.yml: `docker compose config -q` when the compose plugin exists, and always
#      the compose-spec loader (compose-go) plus structure checks in deploy/chartcheck;
#   6. deploy/otel-collector.yaml and deploy/Dockerfile structure checks;
#   7. the chart's copy of the alert rules is deploy/prometheus/alerts.yaml byte for byte, and
#      with metrics.serviceMonitor and metrics.prometheusRule on, the ServiceMonitor scrapes
#      every Service's metrics port and the PrometheusRule's groups equal that file's.
#
# Prints each check and exits non-zero when any fails.
set -euo pipefail

# helm v3.22.0 is built against k8s.io/client-go v0.37.0: like the release binaries, it is
# linked with Kubernetes 1.37 as its default version for capabilities and deprecation checks
# (a plain `go install` would leave 1.20).
HELM_VERSION=v3.22.0
HELM_K8S_MINOR=37

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
TOOLS_BIN=${TOOLS_BIN:-.tools/bin}
mkdir -p "$TOOLS_BIN"
TOOLS_BIN=$(cd "$TOOLS_BIN" && pwd)
helm=$TOOLS_BIN/helm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
step() {
	local name=$1
	shift
	echo
	echo "==> $name"
	if "$@"; then
		echo "    passed: $name"
	else
		echo "    FAILED: $name"
		failed+=("$name")
	fi
}

install_helm() {
	local have=""
	if [[ -x $helm ]]; then
		have=$("$helm" version --template '{{.Version}}' 2>/dev/null || true)
	fi
	if [[ $have == "$HELM_VERSION" ]]; then
		echo "helm $HELM_VERSION present at $helm"
		return
	fi
	echo "installing helm $HELM_VERSION into $TOOLS_BIN (found: ${have:-none}); a cold build takes a few minutes"
	local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	local pkg
	for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
	done
	GOBIN=$TOOLS_BIN GOWORK=off CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
	have=$("$helm" version --template '{{.Version}}')
	[[ $have == "$HELM_VERSION" ]] || { echo "installed helm reports $have, want $HELM_VERSION" >&2; return 1; }
}

build_chartcheck() {
	(cd deploy/chartcheck && GOWORK=off go build -o "$work/chartcheck" .)
	echo "built deploy/chartcheck"
}

chart=charts/pulsehooks
prod=deploy/values-production.yaml
rules=deploy/prometheus/alerts.yaml
monitoring=(--set metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true)

lint() {
	"$helm" lint --strict "$chart"
	"$helm" lint --strict "$chart" -f "$prod"
	"$helm" lint --strict "$chart" -f "$prod" "${monitoring[@]}"
}

render_default() {
	"$helm" template pulsehooks-dev "$chart" --namespace pulsehooks >"$work/default.yaml"
	"$work/chartcheck" manifests -replicas config=2,ingest=2,fanout=2,delivery=3 "$work/default.yaml"
	grep -q '^kind: StatefulSet$' "$work/default.yaml" || { echo "config is not a StatefulSet with default values" >&2; return 1; }
}

# config.attemptLog.persistence.enabled=false: config runs as a Deployment on attemptLog.volume.
render_ephemeral() {
	"$helm" template pulsehooks-dev "$chart" --namespace pulsehooks --set config.attemptLog.persistence.enabled=false >"$work/ephemeral.yaml"
	"$work/chartcheck" manifests -replicas config=2,ingest=2,fanout=2,delivery=3 "$work/ephemeral.yaml"
	! grep -q '^kind: StatefulSet$' "$work/ephemeral.yaml" || { echo "a StatefulSet rendered with persistence disabled" >&2; return 1; }
}

render_production() {
	"$helm" template pulsehooks "$chart" --namespace pulsehooks -f "$prod" >"$work/production.yaml"
	"$work/chartcheck" manifests -external-secrets pulsehooks-secrets "$work/production.yaml"
}

rules_copy() {
	cmp "$rules" "$chart/files/alerts.yaml" && echo "$chart/files/alerts.yaml is $rules"
}

render_monitoring() {
	"$helm" template pulsehooks "$chart" --namespace pulsehooks -f "$prod" "${monitoring[@]}" \
		--set networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring >"$work/monitoring.yaml"
	"$work/chartcheck" manifests -external-secrets pulsehooks-secrets -monitoring -rules "$rules" "$work/monitoring.yaml"
}

# A Sentinel URL (several hosts in one URL) renders and passes the ConfigMap checks.
render_sentinel() {
	"$helm" template pulsehooks-dev "$chart" --namespace pulsehooks \
		--set-string 'redis.url=redis+sentinel://s1:26379\,s2:26379\,s3:26379/mymaster/0' >"$work/sentinel.yaml"
	"$work/chartcheck" manifests -replicas config=2,ingest=2,fanout=2,delivery=3 "$work/sentinel.yaml"
}

# Each line: a --set expression the chart must refuse, and why.
reject_bad_values() {
	local ok=0 set why out
	while IFS='|' read -r set why; do
		if out=$("$helm" template x "$chart" --set "$set" 2>&1 >/dev/null); then
			echo "  FAIL accepted $set ($why)"
			ok=1
		else
			echo "  ok   rejects $set: $(grep -m1 -oE "(at '.*|execution error.*)" <<<"$out" | cut -c1-120)"
		fi
	done <<'EOF'
delivery.terminationGracePeriodSeconds=30|in-flight attempts take up to 30 s
ingest.terminationGracePeriodSeconds=20|the preStop sleep, the drain and the shutdown need 26 s
secrets.masterKey=c2hvcnQ=|the master key is 32 bytes
jetstream.replicas=2|stream replicas are 1, 3 or 5
config.replica=3|unknown keys are typos
delivery.resources.limits.memory=null|every service needs a memory limit
partitions=8,delivery.replicas=9|workers beyond the partition count hold nothing
delivery.autoscaling.enabled=true,delivery.autoscaling.maxReplicas=65|autoscaling beyond the partition count
redis.url=http://redis:6379|Redis URL scheme
config.attemptLog.persistence.size=lots|the attempt log's claim size is a storage quantity
config.attemptLog.persistence.whenScaled=Keep|claim retention is Retain or Delete
metrics.serviceMonitor.enabled=yes|a boolean
metrics.serviceMonitor.interval=often|a duration
redis.url=redis+ring://redis:6379|Redis URL scheme (one node, Sentinel or Cluster)
EOF
	return $ok
}

compose() {
	if docker compose version >/dev/null 2>&1; then
		docker compose --env-file .env.example -f docker-compose.yml config -q
		echo "docker compose config -q: ok"
	else
		echo "docker compose plugin not installed: validating with the compose-spec loader (compose-go) only"
	fi
	"$work/chartcheck" compose -env-file .env.example docker-compose.yml
}

start=$SECONDS
step "helm $HELM_VERSION" install_helm
step "build deploy/chartcheck" build_chartcheck
if ((${#failed[@]} == 0)); then
	step "helm lint --strict (default and production values)" lint
	step "helm template + manifest checks (default values)" render_default
	step "helm template + manifest checks (config.attemptLog.persistence.enabled=false)" render_ephemeral
	step "helm template + manifest checks ($prod)" render_production
	step "chart's alert rules are $rules" rules_copy
	step "helm template + manifest checks (ServiceMonitor and PrometheusRule on)" render_monitoring
	step "helm template + manifest checks (a redis+sentinel URL)" render_sentinel
	step "values the chart must reject" reject_bad_values
	step "docker-compose.yml" compose
	step "deploy/otel-collector.yaml" "$work/chartcheck" otel deploy/otel-collector.yaml
	step "deploy/Dockerfile and .dockerignore" "$work/chartcheck" dockerfile deploy/Dockerfile
fi

echo
if ((${#failed[@]} > 0)); then
	echo "deploy/check.sh: ${#failed[@]} step(s) failed in $((SECONDS - start))s:"
	printf '  - %s\n' "${failed[@]}"
	exit 1
fi
echo "deploy/check.sh: all deployment checks passed in $((SECONDS - start))s (offline: nothing was built into an image, installed or started)"
