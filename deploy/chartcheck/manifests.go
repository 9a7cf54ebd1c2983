package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// expectation is what one service's workload (Deployment or StatefulSet) must look like.
type expectation struct {
	ports     map[string]int32  // container port name → number
	probePort string            // port name of /healthz and /readyz
	listenEnv map[string]string // listen-address variable → value, matching ports
	secretEnv map[string]string // variable → key in the pulsehooks Secret
	needEnv   []string          // variables that must be set (env or the shared ConfigMap)
	service   bool              // a Service must expose every port
	minGrace  int64             // minimum terminationGracePeriodSeconds
	// dataEnv names a directory variable whose path must be a mounted volume, and
	// persistent says a StatefulSet must back it with a volumeClaimTemplate.
	dataEnv string
}

var expectations = map[string]expectation{
	"config": {
		ports:     map[string]int32{"http": 8080, "grpc": 9090},
		probePort: "http",
		listenEnv: map[string]string{"PULSEHOOKS_HTTP_ADDR": ":8080", "PULSEHOOKS_GRPC_ADDR": ":9090"},
		secretEnv: map[string]string{"PULSEHOOKS_ADMIN_TOKEN": "admin-token", "PULSEHOOKS_INTERNAL_TOKEN": "internal-token", "PULSEHOOKS_MASTER_KEY": "master-key"},
		needEnv:   []string{"PULSEHOOKS_NATS_URL", "PULSEHOOKS_PUBLIC_URL", "PULSEHOOKS_REPLICAS"},
		service:   true,
		minGrace:  1,
		dataEnv:   "PULSEHOOKS_ATTEMPT_LOG_DIR",
	},
	"ingest": {
		ports:     map[string]int32{"http": 8081},
		probePort: "http",
		listenEnv: map[string]string{"PULSEHOOKS_HTTP_ADDR": ":8081"},
		secretEnv: map[string]string{"PULSEHOOKS_INGEST_TOKEN": "operator-token", "PULSEHOOKS_INTERNAL_TOKEN": "internal-token"},
		needEnv:   []string{"PULSEHOOKS_NATS_URL", "PULSEHOOKS_CONFIG_GRPC", "PULSEHOOKS_REPLICAS"},
		service:   true,
		minGrace:  1,
	},
	"fanout": {
		ports:     map[string]int32{"health": 8082},
		probePort: "health",
		listenEnv: map[string]string{"PULSEHOOKS_HEALTH_ADDR": ":8082"},
		secretEnv: map[string]string{"PULSEHOOKS_INTERNAL_TOKEN": "internal-token"},
		needEnv:   []string{"PULSEHOOKS_NATS_URL", "PULSEHOOKS_CONFIG_GRPC", "PULSEHOOKS_PARTITIONS", "PULSEHOOKS_REPLICAS"},
		minGrace:  1,
	},
	"delivery": {
		ports:     map[string]int32{"health": 8083},
		probePort: "health",
		listenEnv: map[string]string{"PULSEHOOKS_HEALTH_ADDR": ":8083"},
		secretEnv: map[string]string{"PULSEHOOKS_INTERNAL_TOKEN": "internal-token"},
		needEnv:   []string{"PULSEHOOKS_NATS_URL", "PULSEHOOKS_REDIS_URL", "PULSEHOOKS_CONFIG_GRPC", "PULSEHOOKS_PARTITIONS", "PULSEHOOKS_REPLICAS"},
		// In-flight attempts take up to 30 s.
		minGrace: 45,
	},
}

// secretKeys are the keys of the pulsehooks Secret.
var secretKeys = []string{"admin-token", "operator-token", "internal-token", "master-key"}

const nonrootUID = 65532

// workload is a Deployment or a StatefulSet: what the checks of a service's pods need.
type workload struct {
	kind     string // "Deployment" or "StatefulSet"
	name     string
	replicas *int32
	selector *metav1.LabelSelector
	template corev1.PodTemplateSpec
	sts      *appsv1.StatefulSet // nil for a Deployment
}

// subject names the workload in reports.
func (w *workload) subject() string { return w.kind + " " + w.name }

// component is the workload's app.kubernetes.io/component pod label.
func (w *workload) component() string { return w.template.Labels["app.kubernetes.io/component"] }

// objects is one rendered chart, by kind.
type objects struct {
	workloads       []*workload
	services        []*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	serviceAccounts map[string]bool
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	netpols         []*networkingv1.NetworkPolicy
	serviceMonitors []*monitoringv1.ServiceMonitor
	prometheusRules []*monitoringv1.PrometheusRule
}

// manifestOptions are the expectations that depend on the values file.
type manifestOptions struct {
	replicas        map[string]int32 // component → spec.replicas, when not autoscaled
	externalSecrets []string         // Secrets referenced but not rendered (existingSecret)
	monitoring      bool             // a ServiceMonitor and a PrometheusRule are expected
	rulesFile       string           // the rule file the PrometheusRule's groups must equal
}

func runManifests(r *report, args []string) error {
	fs := flag.NewFlagSet("manifests", flag.ContinueOnError)
	replicas := fs.String("replicas", "", "expected spec.replicas, e.g. config=2,ingest=2 (services without an HPA)")
	external := fs.String("external-secrets", "", "Secrets the manifests may reference without rendering them")
	monitoring := fs.Bool("monitoring", false, "expect a ServiceMonitor and a PrometheusRule (otherwise neither)")
	rules := fs.String("rules", "", "with -monitoring: the Prometheus rule file the PrometheusRule's groups must equal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one rendered manifest file")
	}
	opts := manifestOptions{replicas: map[string]int32{}, externalSecrets: splitList(*external), monitoring: *monitoring, rulesFile: *rules}
	for _, kv := range splitList(*replicas) {
		name, n, ok := strings.Cut(kv, "=")
		v, err := strconv.Atoi(n)
		if !ok || err != nil {
			return fmt.Errorf("-replicas: %q is not component=count", kv)
		}
		opts.replicas[name] = int32(v)
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	objs, err := decodeManifests(r, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	var deployments, statefulSets int
	for _, w := range objs.workloads {
		if w.sts != nil {
			statefulSets++
		} else {
			deployments++
		}
	}
	fmt.Printf("%s: %d Deployments, %d StatefulSets, %d Services, %d ConfigMaps, %d Secrets, %d PodDisruptionBudgets, %d HPAs, %d NetworkPolicies, %d ServiceMonitors, %d PrometheusRules\n",
		fs.Arg(0), deployments, statefulSets, len(objs.services), len(objs.configMaps), len(objs.secrets), len(objs.pdbs), len(objs.hpas), len(objs.netpols),
		len(objs.serviceMonitors), len(objs.prometheusRules))
	checkManifests(r, objs, opts)
	return nil
}

// apiVersions is the apiVersion each kind must use (the stable one).
var apiVersions = map[string]string{
	"Deployment":              "apps/v1",
	"StatefulSet":             "apps/v1",
	"Service":                 "v1",
	"ConfigMap":               "v1",
	"Secret":                  "v1",
	"ServiceAccount":          "v1",
	"PodDisruptionBudget":     "policy/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
	"NetworkPolicy":           "networking.k8s.io/v1",
	"ServiceMonitor":          "monitoring.coreos.com/v1",
	"PrometheusRule":          "monitoring.coreos.com/v1",
}

// decodeManifests reads every document strictly (unknown or duplicate fields fail) into
// its typed Kubernetes object, and checks names, labels and apiVersions on the way.
func decodeManifests(r *report, in io.Reader) (*objects, error) {
	objs := &objects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, serviceAccounts: map[string]bool{}}
	seen := map[string]bool{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document is not YAML: %w\n%s", err, doc)
		}
		if tm.Kind == "" && len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue // empty document
		}
		var (
			obj  any
			meta *metav1.ObjectMeta
		)
		switch tm.Kind {
		case "Deployment":
			o := &appsv1.Deployment{}
			obj, meta = o, &o.ObjectMeta
		case "StatefulSet":
			o := &appsv1.StatefulSet{}
			obj, meta = o, &o.ObjectMeta
		case "Service":
			o := &corev1.Service{}
			obj, meta = o, &o.ObjectMeta
		case "ConfigMap":
			o := &corev1.ConfigMap{}
			obj, meta = o, &o.ObjectMeta
		case "Secret":
			o := &corev1.Secret{}
			obj, meta = o, &o.ObjectMeta
		case "ServiceAccount":
			o := &corev1.ServiceAccount{}
			obj, meta = o, &o.ObjectMeta
		case "PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			obj, meta = o, &o.ObjectMeta
		case "HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			obj, meta = o, &o.ObjectMeta
		case "NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			obj, meta = o, &o.ObjectMeta
		case "ServiceMonitor":
			o := &monitoringv1.ServiceMonitor{}
			obj, meta = o, &o.ObjectMeta
		case "PrometheusRule":
			o := &monitoringv1.PrometheusRule{}
			obj, meta = o, &o.ObjectMeta
		default:
			r.fail("manifests", "unexpected kind %q (apiVersion %q)", tm.Kind, tm.APIVersion)
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			r.fail(tm.Kind, "does not decode strictly as %s: %v", apiVersions[tm.Kind], err)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			objs.workloads = append(objs.workloads, &workload{kind: "Deployment", name: o.Name,
				replicas: o.Spec.Replicas, selector: o.Spec.Selector, template: o.Spec.Template})
		case *appsv1.StatefulSet:
			objs.workloads = append(objs.workloads, &workload{kind: "StatefulSet", name: o.Name,
				replicas: o.Spec.Replicas, selector: o.Spec.Selector, template: o.Spec.Template, sts: o})
		case *corev1.Service:
			objs.services = append(objs.services, o)
		case *corev1.ConfigMap:
			objs.configMaps[o.Name] = o
		case *corev1.Secret:
			objs.secrets[o.Name] = o
		case *corev1.ServiceAccount:
			objs.serviceAccounts[o.Name] = true
		case *policyv1.PodDisruptionBudget:
			objs.pdbs = append(objs.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			objs.hpas = append(objs.hpas, o)
		case *networkingv1.NetworkPolicy:
			objs.netpols = append(objs.netpols, o)
		case *monitoringv1.ServiceMonitor:
			objs.serviceMonitors = append(objs.serviceMonitors, o)
		case *monitoringv1.PrometheusRule:
			objs.prometheusRules = append(objs.prometheusRules, o)
		}
		subject := tm.Kind + " " + meta.Name
		r.check(subject, tm.APIVersion == apiVersions[tm.Kind], "apiVersion %q, want %q", tm.APIVersion, apiVersions[tm.Kind])
		key := tm.Kind + "/" + meta.Name
		r.check(subject, !seen[key], "rendered twice")
		seen[key] = true
		nameErrs := validation.IsDNS1123Subdomain(meta.Name)
		if tm.Kind == "Service" {
			nameErrs = validation.IsDNS1035Label(meta.Name)
		}
		r.check(subject, len(nameErrs) == 0, "invalid name: %s", strings.Join(nameErrs, "; "))
		r.check(subject, meta.Namespace == "", "sets metadata.namespace (leave it to helm -n)")
		checkLabels(r, subject, "metadata.labels", meta.Labels)
		r.check(subject, meta.Labels["app.kubernetes.io/instance"] != "" && meta.Labels["app.kubernetes.io/managed-by"] != "",
			"missing app.kubernetes.io/instance or managed-by labels")
	}
	return objs, nil
}

// stripComments drops YAML comment lines.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func checkLabels(r *report, subject, where string, ls map[string]string) {
	for k, v := range ls {
		errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...)
		r.check(subject, len(errs) == 0, "%s %s=%q: %s", where, k, v, strings.Join(errs, "; "))
	}
}

func checkManifests(r *report, o *objects, opts manifestOptions) {
	byComponent := map[string]*workload{}
	for _, w := range o.workloads {
		comp := w.component()
		if _, dup := byComponent[comp]; dup {
			r.fail(w.subject(), "second workload for component %q", comp)
		}
		byComponent[comp] = w
	}
	for _, c := range components {
		r.check("chart", byComponent[c] != nil, "no Deployment or StatefulSet for %s", c)
	}
	var cm *corev1.ConfigMap
	for _, w := range o.workloads {
		if c := checkWorkload(r, w, o, opts); c != nil {
			cm = c
		}
	}
	checkServices(r, o, byComponent)
	checkMetricsPorts(r, o, byComponent)
	checkMonitoring(r, o, opts.monitoring, opts.rulesFile)
	checkPDBs(r, o)
	checkHPAs(r, o, cm)
	checkNetworkPolicies(r, o)
	if cm != nil {
		checkConfigMap(r, cm, o)
	}
	for _, s := range o.secrets {
		checkSecret(r, s)
	}
}

// selects reports whether sel (a workload, PDB, NetworkPolicy or HPA selector) selects the pod labels.
func selects(sel *metav1.LabelSelector, pod map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(pod))
}

// checkWorkload checks one service's Deployment or StatefulSet and returns the ConfigMap its pods load.
func checkWorkload(r *report, w *workload, o *objects, opts manifestOptions) *corev1.ConfigMap {
	subj := w.subject()
	pod := w.template
	comp := w.component()
	exp, known := expectations[comp]
	if !known {
		r.fail(subj, "pod label app.kubernetes.io/component=%q is not one of %v", comp, components)
		return nil
	}
	checkLabels(r, subj, "pod labels", pod.Labels)
	r.check(subj, selects(w.selector, pod.Labels), "spec.selector does not select the pod template's labels")

	// Replicas: fixed unless an HPA scales the workload.
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	for _, h := range o.hpas {
		if h.Spec.ScaleTargetRef.Kind == w.kind && h.Spec.ScaleTargetRef.Name == w.name {
			hpa = h
		}
	}
	switch {
	case hpa != nil:
		r.check(subj, w.replicas == nil, "sets spec.replicas although HorizontalPodAutoscaler %s scales it (each upgrade would reset the count)", hpa.Name)
	case w.replicas == nil:
		r.fail(subj, "no spec.replicas and no HorizontalPodAutoscaler")
	default:
		if want, ok := opts.replicas[comp]; ok {
			r.check(subj, *w.replicas == want, "spec.replicas %d, want %d", *w.replicas, want)
		}
	}
	if w.sts != nil {
		checkStatefulSet(r, w, o)
	}

	spec := pod.Spec
	r.check(subj, spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken, "automountServiceAccountToken is not false (the services do not call the Kubernetes API)")
	r.check(subj, spec.ServiceAccountName != "" && (o.serviceAccounts[spec.ServiceAccountName] || len(o.serviceAccounts) == 0),
		"serviceAccountName %q is not a rendered ServiceAccount", spec.ServiceAccountName)
	r.check(subj, spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds >= exp.minGrace,
		"terminationGracePeriodSeconds %v, want at least %d", deref(spec.TerminationGracePeriodSeconds), exp.minGrace)
	if comp == "ingest" && len(spec.Containers) == 1 {
		checkDrain(r, subj, spec)
	}
	aa := spec.Affinity
	hasAnti := aa != nil && aa.PodAntiAffinity != nil &&
		(len(aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 || len(aa.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0)
	r.check(subj, hasAnti, "no pod anti-affinity")
	if hasAnti {
		for _, t := range aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			r.check(subj, selects(t.PodAffinityTerm.LabelSelector, pod.Labels) && t.PodAffinityTerm.TopologyKey != "",
				"anti-affinity term does not select the service's own pods on a topology key")
		}
	}

	psc := spec.SecurityContext
	r.check(subj, psc != nil, "no pod securityContext")
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	r.check(subj, isTrue(psc.RunAsNonRoot), "pod securityContext.runAsNonRoot is not true")
	r.check(subj, psc.RunAsUser != nil && *psc.RunAsUser == nonrootUID, "pod securityContext.runAsUser %v, want %d", deref(psc.RunAsUser), nonrootUID)
	r.check(subj, psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault, "pod securityContext.seccompProfile is not RuntimeDefault")

	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	if w.sts != nil {
		for _, t := range w.sts.Spec.VolumeClaimTemplates {
			r.check(subj, !volumes[t.Name], "volumeClaimTemplate %q has the name of a pod volume", t.Name)
			volumes[t.Name] = true
		}
	}
	r.check(subj, len(spec.InitContainers) == 0, "has init containers (not expected; they would need the same hardening)")
	r.check(subj, len(spec.Containers) == 1 && spec.Containers[0].Name == comp, "want one container named %q", comp)
	var cm *corev1.ConfigMap
	for i := range spec.Containers {
		cm = checkContainer(r, subj, &spec.Containers[i], psc, exp, volumes, o, opts)
	}
	if exp.dataEnv != "" && len(spec.Containers) == 1 {
		checkDataDir(r, w, &spec.Containers[0], exp.dataEnv)
	}
	return cm
}

// checkStatefulSet checks what only a StatefulSet has: its governing Service, an update
// strategy that rolls pods one at a time, and claim templates that each replica can bind.
func checkStatefulSet(r *report, w *workload, o *objects) {
	subj := w.subject()
	spec := w.sts.Spec
	var governing *corev1.Service
	for _, s := range o.services {
		if s.Name == spec.ServiceName {
			governing = s
		}
	}
	r.check(subj, governing != nil, "serviceName %q is not a rendered Service", spec.ServiceName)
	if governing != nil {
		r.check(subj, len(governing.Spec.Selector) > 0 && labels.SelectorFromSet(governing.Spec.Selector).Matches(labels.Set(w.template.Labels)),
			"serviceName %q does not select the StatefulSet's pods", spec.ServiceName)
	}
	r.check(subj, spec.UpdateStrategy.Type == "" || spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType,
		"updateStrategy %q: OnDelete never rolls the pods on an upgrade", spec.UpdateStrategy.Type)
	r.check(subj, len(spec.VolumeClaimTemplates) > 0, "no volumeClaimTemplates (a Deployment would do)")
	for _, t := range spec.VolumeClaimTemplates {
		tsubj := subj + " volumeClaimTemplate " + t.Name
		r.check(tsubj, len(validation.IsDNS1123Label(t.Name)) == 0, "invalid name %q", t.Name)
		r.check(tsubj, len(t.Spec.AccessModes) > 0, "no accessModes")
		for _, m := range t.Spec.AccessModes {
			r.check(tsubj, m == corev1.ReadWriteOnce || m == corev1.ReadWriteOncePod, "accessMode %s: each replica's claim is its own (ReadWriteOnce)", m)
		}
		size, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]
		r.check(tsubj, ok && size.Sign() > 0, "no resources.requests.storage")
		checkLabels(r, tsubj, "metadata.labels", t.Labels)
	}
	if p := spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		for which, v := range map[string]appsv1.PersistentVolumeClaimRetentionPolicyType{"whenDeleted": p.WhenDeleted, "whenScaled": p.WhenScaled} {
			r.check(subj, v == "" || v == appsv1.RetainPersistentVolumeClaimRetentionPolicyType || v == appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
				"persistentVolumeClaimRetentionPolicy.%s %q", which, v)
		}
	}
}

// checkDataDir checks that the directory named by env is a volume mount, and, in a
// StatefulSet, one backed by a volumeClaimTemplate (else the data would not persist).
func checkDataDir(r *report, w *workload, c *corev1.Container, env string) {
	subj := w.subject() + " container " + c.Name
	var dir string
	for _, e := range c.Env {
		if e.Name == env {
			dir = e.Value
		}
	}
	r.check(subj, dir != "", "env %s is not set", env)
	if dir == "" {
		return
	}
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.MountPath == dir {
			mount = &c.VolumeMounts[i]
		}
	}
	r.check(subj, mount != nil && !mount.ReadOnly, "%s=%s is not a writable volume mount (the root filesystem is read-only)", env, dir)
	if mount == nil || w.sts == nil {
		return
	}
	claimed := slices.ContainsFunc(w.sts.Spec.VolumeClaimTemplates, func(t corev1.PersistentVolumeClaim) bool { return t.Name == mount.Name })
	r.check(subj, claimed, "%s=%s is mounted from volume %q, not from a volumeClaimTemplate", env, dir, mount.Name)
}

// ingestShutdownSeconds is ingest's DefaultShutdownTimeout: how long it
// waits for requests in flight once the drain period is over.
const ingestShutdownSeconds = 15

// checkDrain checks that a terminating ingest pod stays reachable through a
// rolling update: a preStop sleep while Service endpoints drop it, then
// PULSEHOOKS_DRAIN_PERIOD of serving with /readyz failing, and a grace
// period covering both and the shutdown.
func checkDrain(r *report, subj string, spec corev1.PodSpec) {
	c := spec.Containers[0]
	var sleep int64
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		sleep = c.Lifecycle.PreStop.Sleep.Seconds
	}
	r.check(subj, sleep > 0, "no preStop sleep: the pod would shut down while Service endpoints still send it requests")
	var drain time.Duration
	for _, e := range c.Env {
		if e.Name == "PULSEHOOKS_DRAIN_PERIOD" {
			d, err := time.ParseDuration(e.Value)
			r.check(subj, err == nil, "PULSEHOOKS_DRAIN_PERIOD %q is not a duration", e.Value)
			drain = d
		}
	}
	r.check(subj, drain > 0, "PULSEHOOKS_DRAIN_PERIOD is not set to a positive duration: load balancers probing /readyz get no time to notice")
	need := sleep + int64(drain/time.Second) + ingestShutdownSeconds + 1
	r.check(subj, spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds >= need,
		"terminationGracePeriodSeconds %v, want at least %d (preStop %d s + drain %v + shutdown %d s + 1)", deref(spec.TerminationGracePeriodSeconds), need, sleep, drain, ingestShutdownSeconds)
}

func checkContainer(r *report, subj string, c *corev1.Container, psc *corev1.PodSecurityContext, exp expectation,
	volumes map[string]bool, o *objects, opts manifestOptions) *corev1.ConfigMap {
	subj += " container " + c.Name

	// Image: a pinned tag or digest.
	ref := c.Image
	_, tag, hasTag := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
	r.check(subj, ref != "" && (strings.Contains(ref, "@sha256:") || (hasTag && tag != "" && tag != "latest")),
		"image %q has no pinned tag or digest", ref)

	// Hardened securityContext (container values override the pod's).
	sc := c.SecurityContext
	r.check(subj, sc != nil, "no securityContext")
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	r.check(subj, isTrue(sc.ReadOnlyRootFilesystem), "readOnlyRootFilesystem is not true")
	r.check(subj, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation is not false")
	r.check(subj, !isTrue(sc.Privileged), "privileged")
	r.check(subj, sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL"), "capabilities.drop does not contain ALL")
	r.check(subj, sc.Capabilities == nil || len(sc.Capabilities.Add) == 0, "adds capabilities %v", capsAdd(sc))
	runAsNonRoot := psc.RunAsNonRoot
	if sc.RunAsNonRoot != nil {
		runAsNonRoot = sc.RunAsNonRoot
	}
	r.check(subj, isTrue(runAsNonRoot), "runAsNonRoot is not true")
	uid := psc.RunAsUser
	if sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	r.check(subj, uid != nil && *uid == nonrootUID, "runAsUser %v, want %d", deref(uid), nonrootUID)
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	r.check(subj, seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault, "seccompProfile is not RuntimeDefault")

	// Resources: requests and limits for cpu and memory, requests within limits.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[res]
		lim, hasLim := c.Resources.Limits[res]
		r.check(subj, hasReq && !req.IsZero(), "no resources.requests.%s", res)
		r.check(subj, hasLim && !lim.IsZero(), "no resources.limits.%s", res)
		if hasReq && hasLim {
			r.check(subj, req.Cmp(lim) <= 0, "resources.requests.%s %s exceeds the limit %s", res, req.String(), lim.String())
		}
	}

	// Ports and probes.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, want := range exp.ports {
		r.check(subj, ports[name] == want, "container port %q is %d, want %d", name, ports[name], want)
	}
	checkProbe(r, subj, "livenessProbe", c.LivenessProbe, "/healthz", exp.probePort, c)
	checkProbe(r, subj, "readinessProbe", c.ReadinessProbe, "/readyz", exp.probePort, c)
	if c.StartupProbe != nil {
		checkProbe(r, subj, "startupProbe", c.StartupProbe, "/healthz", exp.probePort, c)
	}
	for _, m := range c.VolumeMounts {
		r.check(subj, volumes[m.Name], "volumeMount %q has no volume", m.Name)
	}

	// Environment: the shared ConfigMap, the Secret keys this service needs, listen addresses.
	var cm *corev1.ConfigMap
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm = o.configMaps[ef.ConfigMapRef.Name]
			r.check(subj, cm != nil, "envFrom ConfigMap %q is not rendered", ef.ConfigMapRef.Name)
		case ef.SecretRef != nil:
			r.fail(subj, "envFrom Secret %q: take secrets one key at a time (secretKeyRef)", ef.SecretRef.Name)
		}
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		_, dup := env[e.Name]
		r.check(subj, !dup, "env %s set twice", e.Name)
		env[e.Name] = e
		if ref := secretRef(e); ref != nil {
			checkSecretRef(r, subj, e.Name, ref, o, opts)
		}
	}
	for name, key := range exp.secretEnv {
		ref := secretRef(env[name])
		r.check(subj, ref != nil && ref.Key == key, "env %s is not taken from Secret key %q", name, key)
	}
	for name := range env {
		if isSecretName(name) {
			r.check(subj, secretRef(env[name]) != nil, "env %s holds a secret but is not a secretKeyRef", name)
		}
	}
	for name, want := range exp.listenEnv {
		r.check(subj, env[name].Value == want, "env %s=%q, want %q", name, env[name].Value, want)
	}
	for _, name := range exp.needEnv {
		_, inEnv := env[name]
		inCM := cm != nil && cm.Data[name] != ""
		r.check(subj, inEnv || inCM, "%s is set neither in env nor in the ConfigMap", name)
	}
	return cm
}

func checkProbe(r *report, subj, which string, p *corev1.Probe, path, portName string, c *corev1.Container) {
	if p == nil || p.HTTPGet == nil {
		r.fail(subj, "no %s httpGet", which)
		return
	}
	r.check(subj, p.HTTPGet.Path == path, "%s path %q, want %q", which, p.HTTPGet.Path, path)
	r.check(subj, resolvesPort(p.HTTPGet.Port, c) && (p.HTTPGet.Port.StrVal == portName || p.HTTPGet.Port.IntVal == portOf(c, portName)),
		"%s port %s is not the %q container port", which, p.HTTPGet.Port.String(), portName)
	r.check(subj, p.PeriodSeconds > 0 && p.TimeoutSeconds > 0 && p.TimeoutSeconds < p.PeriodSeconds+1,
		"%s timing periodSeconds=%d timeoutSeconds=%d", which, p.PeriodSeconds, p.TimeoutSeconds)
}

// resolvesPort reports whether port (a name or number) is one of c's container ports.
func resolvesPort(port intstr.IntOrString, c *corev1.Container) bool {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return true
		}
	}
	return false
}

func portOf(c *corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return -1
}

func secretRef(e corev1.EnvVar) *corev1.SecretKeySelector {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

// isSecretName reports whether an environment variable carries a secret by its name.
func isSecretName(name string) bool {
	return strings.HasSuffix(name, "_TOKEN") || strings.HasSuffix(name, "_MASTER_KEY") || strings.Contains(name, "PASSWORD")
}

func checkSecretRef(r *report, subj, env string, ref *corev1.SecretKeySelector, o *objects, opts manifestOptions) {
	if s, ok := o.secrets[ref.Name]; ok {
		_, has := s.Data[ref.Key]
		if !has {
			_, has = s.StringData[ref.Key]
		}
		r.check(subj, has, "env %s: Secret %s has no key %q", env, ref.Name, ref.Key)
		return
	}
	r.check(subj, slices.Contains(opts.externalSecrets, ref.Name),
		"env %s: Secret %q is neither rendered nor an expected existing Secret (%v)", env, ref.Name, opts.externalSecrets)
}

func checkServices(r *report, o *objects, byComponent map[string]*workload) {
	exposed := map[string]map[string]bool{} // component → port names exposed
	for _, s := range o.services {
		subj := "Service " + s.Name
		r.check(subj, len(s.Spec.Selector) > 0, "no selector")
		var target *workload
		matches := 0
		for _, w := range o.workloads {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
				target = w
				matches++
			}
		}
		r.check(subj, matches == 1, "selector matches %d workloads, want 1", matches)
		if target == nil {
			continue
		}
		comp := target.component()
		if exposed[comp] == nil {
			exposed[comp] = map[string]bool{}
		}
		c := &target.template.Spec.Containers[0]
		for _, p := range s.Spec.Ports {
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port)
			}
			r.check(subj, resolvesPort(tp, c), "port %s targets %s, not a container port of %s", p.Name, tp.String(), target.name)
			for name, n := range expectations[comp].ports {
				if n == p.Port && resolvesPort(tp, c) && (tp.StrVal == name || tp.IntVal == n) {
					exposed[comp][name] = true
				}
			}
		}
	}
	for _, comp := range components {
		if !expectations[comp].service || byComponent[comp] == nil {
			continue
		}
		for name, n := range expectations[comp].ports {
			r.check(byComponent[comp].subject(), exposed[comp][name], "no Service exposes port %s (%d) on the same number", name, n)
		}
	}
}

func checkPDBs(r *report, o *objects) {
	for _, w := range o.workloads {
		var covering []*policyv1.PodDisruptionBudget
		for _, p := range o.pdbs {
			if selects(p.Spec.Selector, w.template.Labels) {
				covering = append(covering, p)
			}
		}
		subj := w.subject()
		r.check(subj, len(covering) == 1, "covered by %d PodDisruptionBudgets, want 1", len(covering))
		for _, p := range covering {
			if p.Spec.MinAvailable != nil && p.Spec.MinAvailable.Type == intstr.Int && w.replicas != nil {
				r.check("PodDisruptionBudget "+p.Name, p.Spec.MinAvailable.IntVal < *w.replicas,
					"minAvailable %d with %d replicas blocks every drain", p.Spec.MinAvailable.IntVal, *w.replicas)
			}
		}
	}
	for _, p := range o.pdbs {
		subj := "PodDisruptionBudget " + p.Name
		r.check(subj, (p.Spec.MinAvailable == nil) != (p.Spec.MaxUnavailable == nil), "set exactly one of minAvailable and maxUnavailable")
		if p.Spec.MaxUnavailable != nil && p.Spec.MaxUnavailable.Type == intstr.Int {
			r.check(subj, p.Spec.MaxUnavailable.IntVal >= 1, "maxUnavailable %d blocks every drain", p.Spec.MaxUnavailable.IntVal)
		}
	}
}

func checkHPAs(r *report, o *objects, cm *corev1.ConfigMap) {
	partitions := int32(-1)
	if cm != nil {
		if n, err := strconv.Atoi(cm.Data["PULSEHOOKS_PARTITIONS"]); err == nil {
			partitions = int32(n)
		}
	}
	for _, h := range o.hpas {
		subj := "HorizontalPodAutoscaler " + h.Name
		ref := h.Spec.ScaleTargetRef
		var target *workload
		for _, w := range o.workloads {
			if w.kind == ref.Kind && w.name == ref.Name {
				target = w
			}
		}
		r.check(subj, ref.APIVersion == "apps/v1" && target != nil, "scaleTargetRef %s/%s %s is not a rendered Deployment or StatefulSet", ref.APIVersion, ref.Kind, ref.Name)
		minR := int32(1)
		if h.Spec.MinReplicas != nil {
			minR = *h.Spec.MinReplicas
		}
		r.check(subj, minR >= 1 && minR <= h.Spec.MaxReplicas, "minReplicas %d, maxReplicas %d", minR, h.Spec.MaxReplicas)
		r.check(subj, len(h.Spec.Metrics) > 0, "no metrics")
		if target == nil {
			continue
		}
		comp := target.component()
		r.check(subj, comp != "config", "config runs a fixed number of replicas")
		if comp == "delivery" && partitions > 0 {
			r.check(subj, h.Spec.MaxReplicas <= partitions, "maxReplicas %d exceeds the %d partitions", h.Spec.MaxReplicas, partitions)
		}
		for _, m := range h.Spec.Metrics {
			if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil {
				_, hasReq := target.template.Spec.Containers[0].Resources.Requests[m.Resource.Name]
				r.check(subj, hasReq, "scales on %s utilization but the pods request no %s", m.Resource.Name, m.Resource.Name)
			}
		}
	}
}

func checkNetworkPolicies(r *report, o *objects) {
	if len(o.netpols) == 0 {
		return
	}
	covered := map[string]bool{}
	for _, np := range o.netpols {
		subj := "NetworkPolicy " + np.Name
		var target *workload
		for _, w := range o.workloads {
			if selects(&np.Spec.PodSelector, w.template.Labels) {
				target = w
				covered[w.subject()] = true
			}
		}
		r.check(subj, target != nil, "podSelector selects no workload")
		r.check(subj, slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress), "policyTypes has no Ingress")
		if target == nil {
			continue
		}
		c := &target.template.Spec.Containers[0]
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				r.check(subj, p.Port != nil && resolvesPort(*p.Port, c), "ingress port %v is not a container port of %s", p.Port, target.name)
			}
		}
		// The pods must stay reachable on their probe port, or the policy starves the Service.
		exp := expectations[target.component()]
		open := false
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil && (p.Port.StrVal == exp.probePort || p.Port.IntVal == exp.ports[exp.probePort]) {
					open = true
				}
			}
		}
		r.check(subj, open, "does not allow the health port %q", exp.probePort)
	}
	for _, w := range o.workloads {
		r.check(w.subject(), covered[w.subject()], "NetworkPolicies are rendered but none selects this workload")
	}
}

func checkConfigMap(r *report, cm *corev1.ConfigMap, o *objects) {
	subj := "ConfigMap " + cm.Name
	for k := range cm.Data {
		r.check(subj, !isSecretName(k), "holds %s, a secret: use the Secret", k)
	}
	grpc := cm.Data["PULSEHOOKS_CONFIG_GRPC"]
	host, port, _ := strings.Cut(grpc, ":")
	found := false
	for _, s := range o.services {
		if s.Name == host && s.Spec.Selector["app.kubernetes.io/component"] == "config" {
			for _, p := range s.Spec.Ports {
				found = found || strconv.Itoa(int(p.Port)) == port && p.Name == "grpc"
			}
		}
	}
	r.check(subj, found, "PULSEHOOKS_CONFIG_GRPC=%q is not the config Service's grpc port", grpc)
	// Delivery reaches the relay route (pulsehooks listen) there, past its SSRF policy.
	relay, err := url.Parse(cm.Data["PULSEHOOKS_RELAY_URL"])
	found = false
	for _, s := range o.services {
		if err == nil && relay.Scheme == "http" && s.Name == relay.Hostname() && s.Spec.Selector["app.kubernetes.io/component"] == "config" {
			for _, p := range s.Spec.Ports {
				found = found || strconv.Itoa(int(p.Port)) == relay.Port() && p.Name == "http"
			}
		}
	}
	r.check(subj, found, "PULSEHOOKS_RELAY_URL=%q is not http:// the config Service's http port", cm.Data["PULSEHOOKS_RELAY_URL"])
	n, err := strconv.Atoi(cm.Data["PULSEHOOKS_PARTITIONS"])
	r.check(subj, err == nil && n >= 1, "PULSEHOOKS_PARTITIONS=%q is not a positive number", cm.Data["PULSEHOOKS_PARTITIONS"])
	rep := cm.Data["PULSEHOOKS_REPLICAS"]
	r.check(subj, rep == "1" || rep == "3" || rep == "5", "PULSEHOOKS_REPLICAS=%q, want 1, 3 or 5", rep)
	for key, schemes := range map[string][]string{
		"PULSEHOOKS_NATS_URL":         {"nats", "tls", "ws", "wss"},
		"PULSEHOOKS_REDIS_URL":        {"redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"},
		"PULSEHOOKS_PUBLIC_URL":       {"http", "https"},
		"OTEL_EXPORTER_OTLP_ENDPOINT": {"http", "https"},
	} {
		v, ok := cm.Data[key]
		if !ok && key == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			continue
		}
		urls := strings.Split(v, ",")
		if key == "PULSEHOOKS_REDIS_URL" { // one URL, whose host part may list several hosts
			urls = []string{v}
		}
		for _, one := range urls {
			u, err := url.Parse(one)
			r.check(subj, err == nil && slices.Contains(schemes, u.Scheme) && (u.Host != "" || u.Scheme == "unix"),
				"%s=%q is not a %v URL", key, one, schemes)
		}
	}
	if _, ok := cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"]; ok {
		p := cm.Data["OTEL_EXPORTER_OTLP_PROTOCOL"]
		r.check(subj, p == "grpc" || p == "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL=%q, want grpc or http/protobuf", p)
	}
}

func checkSecret(r *report, s *corev1.Secret) {
	subj := "Secret " + s.Name
	for _, k := range secretKeys {
		r.check(subj, len(s.Data[k]) >= 16, "key %q missing or shorter than 16 bytes", k)
	}
	key, err := base64.StdEncoding.DecodeString(string(s.Data["master-key"]))
	r.check(subj, err == nil && len(key) == 32, "master-key is not standard base64 of 32 bytes")
	r.check(subj, s.Annotations["helm.sh/resource-policy"] == "keep", "no helm.sh/resource-policy: keep (an uninstall would lose the master key)")
}

func isTrue(b *bool) bool { return b != nil && *b }

func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func capsAdd(sc *corev1.SecurityContext) []corev1.Capability {
	if sc.Capabilities == nil {
		return nil
	}
	return sc.Capabilities.Add
}
