#!/bin/sh
# Scans an image with Trivy and ships every finding to vigild (POST /v1/trivy: one event
# per vulnerability, with image, package, CVE and severity) over mutual TLS.
#
#   VIGIL_URL=https://vigild.vigil.svc:8443 VIGIL_CA=pki/ca.pem \
#   VIGIL_CERT=pki/trivy.pem VIGIL_KEY=pki/trivy-key.pem \
#       deploy/kubernetes/trivy/trivy-to-vigil.sh nginx:1.25
#
# Extra arguments go to `trivy image` (e.g. --severity HIGH,CRITICAL). Exits non-zero if
# the scan fails or vigild did not store the report (curl prints vigild's JSON error).
set -eu
: "${VIGIL_URL:?set VIGIL_URL, e.g. https://vigild.vigil.svc:8443}"
: "${VIGIL_CA:?set VIGIL_CA to the vigil CA certificate}"
: "${VIGIL_CERT:?set VIGIL_CERT to this scanner's client certificate}"
: "${VIGIL_KEY:?set VIGIL_KEY to its key}"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
trivy image --quiet --format json --scanners vuln --output "$report" "$@"
curl --fail-with-body --silent --show-error \
    --cacert "$VIGIL_CA" --cert "$VIGIL_CERT" --key "$VIGIL_KEY" \
    -H 'Content-Type: application/json' --data-binary @"$report" \
    "$VIGIL_URL/v1/trivy"
echo
