{{/*
Names, labels and the derived values every template shares. Nothing here renders an object.
*/}}

{{- define "pgfailover.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-wide prefix. Kept to 43 characters so "<prefix>-postgres" (a StatefulSet name) stays
within 52, which keeps its pods' controller-revision-hash label within 63. */}}
{{- define "pgfailover.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 43 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pgfailover.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "pgfailover.labels" -}}
helm.sh/chart: {{ include "pgfailover.chart" . }}
app.kubernetes.io/name: {{ include "pgfailover.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "pgfailover.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "postgres"). */}}
{{- define "pgfailover.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pgfailover.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "pgfailover.componentLabels" -}}
{{ include "pgfailover.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Object names. */}}
{{- define "pgfailover.monitor.fullname" -}}{{ include "pgfailover.fullname" . }}{{- end -}}
{{- define "pgfailover.postgres.fullname" -}}{{ include "pgfailover.fullname" . }}-postgres{{- end -}}
{{- define "pgfailover.postgres.headless" -}}{{ include "pgfailover.fullname" . }}-postgres-hl{{- end -}}
{{- define "pgfailover.haproxy.fullname" -}}{{ include "pgfailover.fullname" . }}-haproxy{{- end -}}
{{- define "pgfailover.rw.fullname" -}}{{ include "pgfailover.fullname" . }}-rw{{- end -}}
{{- define "pgfailover.ro.fullname" -}}{{ include "pgfailover.fullname" . }}-ro{{- end -}}
{{- define "pgfailover.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pgfailover.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secrets: the chart's own, or the one the user named. */}}
{{- define "pgfailover.auth.secretName" -}}
{{- default (printf "%s-auth" (include "pgfailover.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}
{{- define "pgfailover.ssh.secretName" -}}
{{- default (printf "%s-ssh" (include "pgfailover.fullname" .)) .Values.ssh.existingSecret -}}
{{- end -}}
{{- define "pgfailover.ssh.publicName" -}}{{ include "pgfailover.fullname" . }}-ssh-public{{- end -}}
{{- define "pgfailover.tls.secretName" -}}
{{- default (printf "%s-tls" (include "pgfailover.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}
{{- define "pgfailover.admin.secretName" -}}
{{- default (printf "%s-admin" (include "pgfailover.fullname" .)) .Values.admin.existingSecret -}}
{{- end -}}

{{/* The cluster name pgfailover shows in /status and metrics: clusterName, else the release. */}}
{{- define "pgfailover.clusterName" -}}
{{- default .Release.Name .Values.clusterName -}}
{{- end -}}

{{/* The StatefulSet has exactly two pods: pod 0 starts as the primary, pod 1 clones it. */}}
{{- define "pgfailover.nodeCount" -}}2{{- end -}}

{{/* Name of node (pod) $i: call with (dict "ctx" $ "i" 0). The pod name is the node name, so
/primary/NODE, HAProxy's server names, metric labels and `kubectl get pod` all say the same. */}}
{{- define "pgfailover.nodeName" -}}
{{- printf "%s-%d" (include "pgfailover.postgres.fullname" .ctx) (int .i) -}}
{{- end -}}

{{/* The stable DNS name of node $i through the headless Service. */}}
{{- define "pgfailover.nodeHost" -}}
{{- printf "%s.%s.%s.svc.%s" (include "pgfailover.nodeName" .) (include "pgfailover.postgres.headless" .ctx) .ctx.Release.Namespace .ctx.Values.clusterDomain -}}
{{- end -}}

{{/* pgfailover's API as seen from inside the cluster. */}}
{{- define "pgfailover.apiHost" -}}
{{- printf "%s.%s.svc.%s" (include "pgfailover.monitor.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- define "pgfailover.apiUrl" -}}
{{- printf "http://%s:%d" (include "pgfailover.apiHost" .) (int .Values.pgfailover.service.port) -}}
{{- end -}}

{{/* "true" when pgfailover runs coordinated through etcd (etcd.endpoints set), else "". */}}
{{- define "pgfailover.etcd" -}}
{{- if .Values.etcd.endpoints -}}true{{- end -}}
{{- end -}}

{{/* How many pgfailover pods: pgfailover.replicas, else 2 with etcd and 1 without. */}}
{{- define "pgfailover.replicas" -}}
{{- if kindIs "invalid" .Values.pgfailover.replicas -}}
{{- if include "pgfailover.etcd" . -}}2{{- else -}}1{{- end -}}
{{- else -}}
{{- int .Values.pgfailover.replicas -}}
{{- end -}}
{{- end -}}

{{/* Combinations the values schema cannot express; included by the templates that depend on
them, so that `helm template` and `helm install` refuse them with a message. */}}
{{- define "pgfailover.validate" -}}
{{- $replicas := int (include "pgfailover.replicas" .) -}}
{{- if and (gt $replicas 1) (not (include "pgfailover.etcd" .)) -}}
{{- fail (printf "pgfailover.replicas is %d, but several pgfailover instances need etcd.endpoints: without etcd each one would act on its own (two deciders promoting and fencing the same nodes). Set etcd.endpoints to your etcd cluster, or pgfailover.replicas to 1." $replicas) -}}
{{- end -}}
{{- if and (not (include "pgfailover.etcd" .)) (or .Values.etcd.tls.existingSecret .Values.etcd.user) -}}
{{- fail "etcd.tls.existingSecret or etcd.user is set but etcd.endpoints is empty: without endpoints pgfailover runs as a single instance and uses no etcd. Set etcd.endpoints too, or leave the etcd values empty." -}}
{{- end -}}
{{- if include "pgfailover.etcd" . -}}
{{- if .Values.pgfailover.persistence.enabled -}}
{{- fail "pgfailover.persistence.enabled keeps a single instance's state file; with etcd.endpoints the state lives in etcd and no state volume is used. Set pgfailover.persistence.enabled to false." -}}
{{- end -}}
{{- $schemes := dict -}}
{{- range .Values.etcd.endpoints -}}
{{- $_ := set $schemes (regexFind "^https?" .) true -}}
{{- end -}}
{{- if gt (len $schemes) 1 -}}
{{- fail (printf "etcd.endpoints mixes http:// and https:// (%s): every member of one etcd cluster is reached the same way." (join ", " .Values.etcd.endpoints)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when the pgfailover Deployment may roll (RollingUpdate) rather than recreate: with
etcd, unless the live Deployment (lookup; empty on a first install and without a cluster) is not
marked pgfailover/coordination: etcd, i.e. it still runs a single uncoordinated instance, which
must stop before any coordinated one starts. Call with (dict "etcd" ... "live" ...). */}}
{{- define "pgfailover.mayRoll" -}}
{{- if .etcd -}}
{{- if not .live -}}true
{{- else if eq (index (.live.metadata.annotations | default dict) "pgfailover/coordination" | default "") "etcd" -}}true
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pgfailover.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the pgfailover container; pgfailover.json names them, the Deployment mounts
them. tests/helm/run.sh checks that every file the configuration names is mounted. */}}
{{- define "pgfailover.paths" -}}
configDir: /etc/pgfailover
config: /etc/pgfailover/pgfailover.json
passwordFile: /etc/pgfailover/secrets/superuser-password
tokenFile: /etc/pgfailover/secrets/admin-token
privateKey: /etc/pgfailover/ssh/private_key
knownHosts: /etc/pgfailover/ssh/known_hosts
caCert: /etc/pgfailover/tls/ca.crt
clientCert: /etc/pgfailover/tls/client.crt
clientKey: /etc/pgfailover/tls/client.key
stateDir: /var/lib/pgfailover
stateFile: /var/lib/pgfailover/state.json
etcdCa: /etc/pgfailover/etcd/ca.crt
etcdCert: /etc/pgfailover/etcd/tls.crt
etcdKey: /etc/pgfailover/etcd/tls.key
etcdPasswordFile: /etc/pgfailover/secrets/etcd-password
{{- end -}}

{{/*
The OpenSSH public key ("ecdsa-sha2-nistp256 AAAA...") of a PEM "EC PRIVATE KEY" on curve P-256,
as genPrivateKey "ecdsa" makes it. Its DER (RFC 5915, as Go's x509.MarshalECPrivateKey writes it)
is 121 bytes and ends with the public point 04||X||Y (65 bytes at offset 56), which is all the
OpenSSH wire format needs: string "ecdsa-sha2-nistp256", string "nistp256", string Q. Any other
layout fails the render rather than producing a wrong key.
*/}}
{{- define "pgfailover.ecdsaPublicKey" -}}
{{- $body := . | replace "-----BEGIN EC PRIVATE KEY-----" "" | replace "-----END EC PRIVATE KEY-----" "" | nospace -}}
{{- $der := b64dec $body -}}
{{- $head := printf "%x" (substr 0 7 $der) -}}
{{- $curve := printf "%x" (substr 39 53 $der) -}}
{{- if or (ne (len $der) 121) (ne $head "30770201010420") (ne $curve "a00a06082a8648ce3d030107a144") (ne (printf "%x" (substr 53 57 $der)) "03420004") -}}
{{- fail "internal: an ECDSA key generated for ssh is not a P-256 SEC1 key of the expected layout" -}}
{{- end -}}
{{- $blob := printf "%s%s" "\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41" (substr 56 121 $der) -}}
{{- printf "ecdsa-sha2-nistp256 %s" (b64enc $blob) -}}
{{- end -}}

{{/* A known_hosts name: "host" on port 22, "[host]:port" otherwise, as OpenSSH writes them. */}}
{{- define "pgfailover.knownHostsName" -}}
{{- if eq (int .port) 22 -}}{{ .host }}{{- else -}}[{{ .host }}]:{{ .port }}{{- end -}}
{{- end -}}

