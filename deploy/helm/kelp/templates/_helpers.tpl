{{/* The labels of the controller's Deployment and pods, as Kubeless's. */}}
{{- define "kelp.controllerLabels" -}}
kubeless: controller
{{- end }}
