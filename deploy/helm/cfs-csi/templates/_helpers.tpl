{{/*
Names and decisions shared by the templates. Object names are fixed (the seed's), not prefixed with the release:
the CSI driver is cluster-wide, so one release per cluster is all that makes sense.
*/}}

{{- define "cfs-csi.driverName" -}}com.tencent.cloud.csi.cfs{{- end -}}

{{/* Kubernetes release of the target cluster: the API server's, or --kube-version for helm template. */}}
{{- define "cfs-csi.kubeVersion" -}}{{ .Capabilities.KubeVersion.Version }}{{- end -}}

{{/* "true" when the cluster is at least the given release: (list $ "1.16"). Pre-release builds count too. */}}
{{- define "cfs-csi.atLeast" -}}
{{- $root := index . 0 -}}
{{- if semverCompare (printf ">=%s-0" (index . 1)) (include "cfs-csi.kubeVersion" $root) -}}true{{- end -}}
{{- end -}}

{{/* Clusters before 1.14 have no storage.k8s.io CSIDriver to turn attach off: they need csi-attacher. */}}
{{- define "cfs-csi.needsAttacher" -}}
{{- if not (include "cfs-csi.atLeast" (list . "1.14")) -}}true{{- end -}}
{{- end -}}

{{/* The first image of a sidecar list whose minKube the cluster meets: (list $ "provisioner"). */}}
{{- define "cfs-csi.sidecarImage" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $found := "" -}}
{{- range (index $root.Values.sidecars $name) -}}
{{- if and (not $found) (include "cfs-csi.atLeast" (list $root .minKube)) -}}
{{- $found = .image -}}
{{- end -}}
{{- end -}}
{{- required (printf "sidecars.%s has no image for Kubernetes %s" $name (include "cfs-csi.kubeVersion" $root)) $found -}}
{{- end -}}

{{- /* The image of an optional sidecar for this cluster, or "" when no release of it supports the cluster. */ -}}
{{- define "cfs-csi.optionalSidecarImage" -}}
{{- $root := index . 0 -}}
{{- $found := "" -}}
{{- range (index $root.Values.sidecars (index . 1)) -}}
{{- if and (not $found) (include "cfs-csi.atLeast" (list $root .minKube)) -}}
{{- $found = .image -}}
{{- end -}}
{{- end -}}
{{- $found -}}
{{- end -}}

{{- define "cfs-csi.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "cfs-csi.labels" -}}
app.kubernetes.io/name: cfs-csi
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* The Secret with cloud keys, if any: an existing one, or the one this chart makes from values. */}}
{{- define "cfs-csi.credentialsSecret" -}}
{{- if .Values.emulator.enabled -}}
cfs-csi-emulator-credentials
{{- else -}}
{{- with .Values.cloud.credentials -}}
{{- if .existingSecret -}}
{{ .existingSecret }}
{{- else if or .secretId .secretKey -}}
cfs-csi-cloud-credentials
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Flags of the tencent backend, shared by the controller plugin and the operator. */}}
{{- define "cfs-csi.cloudArgs" -}}
- --backend=tencent
{{- if .Values.emulator.enabled }}
- --cfs-endpoint=http://127.0.0.1:{{ .Values.emulator.port }}  # the emulator in this pod
- --region={{ .Values.emulator.region }}
- --zone={{ .Values.emulator.zone }}
{{- else }}
- --cfs-endpoint={{ .Values.cloud.endpoint }}
{{- with .Values.cloud.region }}
- --region={{ . }}
{{- end }}
{{- with .Values.cloud.zone }}
- --zone={{ . }}
{{- end }}
{{- end }}
{{- with .Values.cloud.clusterId }}
- --cluster-id={{ . }}
{{- end }}
{{- if include "cfs-csi.credentialsSecret" . }}
- --credentials-dir=/etc/cfs-csi/credentials
{{- end }}
{{- end -}}

{{- define "cfs-csi.credentialsMount" -}}
{{- if include "cfs-csi.credentialsSecret" . }}
- name: cloud-credentials
  mountPath: /etc/cfs-csi/credentials
  readOnly: true
{{- end }}
{{- end -}}

{{- define "cfs-csi.credentialsVolume" -}}
{{- with include "cfs-csi.credentialsSecret" . }}
- name: cloud-credentials
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* Containers that need no privilege: our image's unprivileged user, nothing writable but what is mounted. */}}
{{- define "cfs-csi.restricted" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "cfs-csi.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
fsGroup: 10001
{{- if include "cfs-csi.atLeast" (list . "1.19") }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- end -}}

{{/* Environment of containers that call the API server, when apiServer.host/port replace the `kubernetes` Service. */}}
{{- define "cfs-csi.apiServerEnv" -}}
{{- with .Values.apiServer -}}
{{- if or .host .port -}}
- name: KUBERNETES_SERVICE_HOST
  value: {{ required "apiServer.host is needed with apiServer.port" .host | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ required "apiServer.port is needed with apiServer.host" .port | toString | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* Global flags of our containers (before the sub-command): the log format when it is not the default. */ -}}
{{- define "cfs-csi.logFlags" -}}
{{- if eq .Values.logFormat "json" -}}
- --log-format=json
{{- end -}}
{{- end -}}
