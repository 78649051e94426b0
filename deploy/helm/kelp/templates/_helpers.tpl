{{/* The labels of the controller's Deployment and pods, as Kubeless's. */}}
{{- define "kelp.controllerLabels" -}}
kubeless: controller
{{- end }}

{{/* The labels of the Deployment and pods of kelp-triggers (the Kafka and NATS consumers). */}}
{{- define "kelp.triggersLabels" -}}
kubeless: triggers
{{- end }}

{{/*
Where Kelp's images live (image.registry), refused as `kelp install --image-registry` refuses it
(kelp_plan::images): a lower-case host[:port] and/or path, at most 200 characters, without '/' at
the end and without tag.
*/}}
{{- define "kelp.registry" -}}
{{- $registry := .Values.image.registry | toString -}}
{{- if or (gt (len $registry) 200) (not (regexMatch `^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*:[0-9]+|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+|[a-z0-9]+(?:(?:_|__|-+)[a-z0-9]+)*)(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$` $registry)) -}}
{{- fail (printf "image.registry %q: not where images live, such as localhost:5000/kelp (lower-case, at most 200 characters, without '/' at the end, without tag: Kelp tags every image with its version)" $registry) -}}
{{- end -}}
{{- $registry -}}
{{- end }}

{{/* The image of both Deployments: image.repository, else <registry>/controller. */}}
{{- define "kelp.image" -}}
image: "{{ .Values.image.repository | default (printf "%s/controller" (include "kelp.registry" .)) }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
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
