/* schemas/map_trivy.c: one flat Trivy vulnerability finding to a record. FORMATS.md
 * section 4; the flat shape is what trivy-operator-like shippers and the bench
 * generator emit (a finding's fields next to ArtifactName and a k8s object). Whole
 * Trivy reports are split into such findings by the HTTPS listener before this.
 *
 * cve = VulnerabilityID (misconfiguration and secret findings: rule = ID/AVDID or RuleID,
 * object = Target), package = PkgName, object = PkgName "@" InstalledVersion (the
 * installed package, so "which images run libc6@2.36-9" is one filter), image =
 * ArtifactName, severity from Severity (CRITICAL critical, HIGH error, MEDIUM warning,
 * LOW notice, UNKNOWN info), message = Title, namespace/pod/container_name/host from
 * k8s.{namespace,pod,container,node}, ts from timestamp, else CreatedAt.
 * Pure; any thread. */
#include "common/mp.h"
#include "schemas/map_int.h"

int map__trivy(const struct map__top *t, struct rec *r, struct buf *scratch, struct errbuf *eb)
{
    struct span s;
    struct span pkg;
    struct span ver;
    int64_t ns;

    if (map__str(t->v[MT_VULN_ID], &s)) {
        rec_set(r, VG_F_CVE, s);
    } else if (map__get_str(r->raw, "ID", &s) || map__get_str(r->raw, "AVDID", &s) ||
               map__get_str(r->raw, "RuleID", &s)) {
        /* A misconfiguration (ID, AVDID) or secret (RuleID) finding, as
         * schemas/trivy_report.c splits them from a report: the check is the rule, the
         * file or k8s object it was found in the object. */
        rec_set(r, VG_F_RULE, s);
        if (map__get_str(r->raw, "Target", &s)) {
            rec_set(r, VG_F_OBJECT, s);
        }
    } else {
        errbuf_set(eb, "trivy finding without a VulnerabilityID, ID or RuleID");
        return VG_EFORMAT;
    }
    rec_set(r, VG_F_SOURCE, SPAN_LIT("trivy"));
    rec_set(r, VG_F_KIND, SPAN_LIT("scan"));
    if (map__str(t->v[MT_PKG_NAME], &pkg)) {
        rec_set(r, VG_F_PACKAGE, pkg);
        if (map__str(t->v[MT_INSTALLED_VERSION], &ver)) {
            struct map__sb sb;
            map__sb_begin(&sb, scratch);
            map__sb_add(&sb, pkg);
            map__sb_byte(&sb, '@');
            map__sb_add(&sb, ver);
            rec_set(r, VG_F_OBJECT, map__sb_end(&sb));
        }
    }
    if (map__str(t->v[MT_ARTIFACT_NAME], &s)) {
        rec_set(r, VG_F_IMAGE, s);
    }
    if (map__str(t->v[MT_SEVERITY_UC], &s)) {
        map__set_sev(r, vg_severity_parse(s));
    }
    if (map__str(t->v[MT_TITLE], &s)) {
        rec_set(r, VG_F_MESSAGE, s);
    }
    if (map__time(t->v[MT_TIMESTAMP], &ns) || map__time(t->v[MT_CREATED_AT], &ns)) {
        map__set_ts(r, ns);
    }
    struct span k8s = t->v[MT_K8S];
    if (k8s.n) {
        if (map__get_str(k8s, "namespace", &s)) {
            rec_set(r, VG_F_NAMESPACE, s);
        }
        if (map__get_str(k8s, "pod", &s)) {
            rec_set(r, VG_F_POD, s);
        }
        if (map__get_str(k8s, "container", &s)) {
            rec_set(r, VG_F_CONTAINER_NAME, s);
        }
        if (map__get_str(k8s, "node", &s)) {
            rec_set(r, VG_F_HOST, s);
        }
    }
    return 0;
}
