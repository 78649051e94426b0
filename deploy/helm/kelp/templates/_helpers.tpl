{{/* The labels of the controller's Deployment and pods, as Kubeless's. */}}
{{- define "kelp.controllerLabels" -}}
kubeless: controller
{{- end }}

{{/* The labels of the Deployment and pods of kelp-triggers (the Kafka and NATS consumers). */}}
{{- define "kelp.triggersLabels" -}}
kubeless: triggers
{{- end }}

{{/* The image of both Deployments. */}}
{{- define "kelp.image" -}}
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- end }}

{{/*
What both containers share: /metrics and /healthz on 8080, the probes, and a security context
without privileges on a read-only root (kelp_plan::install::install_objects).
*/}}
{{- define "kelp.containerCommon" -}}
ports:
- name: metrics
  containerPort: 8080
  protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
readinessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
securityContext:
  allowPrivilegeEscalation: false
  capabilities:
    drop:
    - ALL
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  seccompProfile:
    type: RuntimeDefault
{{- end }}
