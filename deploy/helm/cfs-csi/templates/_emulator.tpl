{{/*
emulator.enabled: the CFS API emulator as a container of the controller pod, so the controller and the operator
reach it on 127.0.0.1 whatever the pod network, and it lives and goes with them. Root, as the file systems'
directories on the node are made by root (a new CFS export is root's too) and deleting a file system removes
whatever pods wrote there; only the two capabilities that takes, nothing else writable but its host directory.
*/}}
{{- define "cfs-csi.emulatorContainer" -}}
- name: cfs-emulator
  image: {{ include "cfs-csi.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - emulator
    - --listen=127.0.0.1:{{ .Values.emulator.port }}
    - --state={{ .Values.emulator.hostDir }}/state/emulator.db
    - --export-root={{ .Values.emulator.hostDir }}/exports
    - --region={{ .Values.emulator.region }}
    - --create-delay={{ .Values.emulator.createDelay }}
  env:
    {{- range (list "TENCENTCLOUD_SECRET_ID" "TENCENTCLOUD_SECRET_KEY") }}
    - name: {{ . }}
      valueFrom:
        secretKeyRef:
          name: cfs-csi-emulator-credentials
          key: {{ . }}
    {{- end }}
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: [ALL]
      add: [DAC_OVERRIDE, FOWNER]
  resources:
    {{- toYaml .Values.emulator.resources | nindent 4 }}
  volumeMounts:
    - name: emulator-data
      mountPath: {{ .Values.emulator.hostDir }}
{{- end -}}
