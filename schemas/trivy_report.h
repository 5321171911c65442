/* schemas/trivy_report.h: whole vulnerability-scanner reports split into one flat finding
 * per vulnerability, misconfiguration and secret, in the shape map_event(MAP_TRIVY) maps
 * (schemas/map_trivy.c; FORMATS.md section 4). Used by the HTTPS listener's /v1/trivy and
 * by `vigil send --format trivy`.
 *
 * Layouts read (the document is msgpack, as json_to_mp writes it):
 *   TRIVY_LAYOUT_REPORT  Trivy JSON, SchemaVersion 2: {ArtifactName, ..., Results: [{Target,
 *                        Class, Type, Vulnerabilities[], Misconfigurations[], Secrets[]}]}
 *   TRIVY_LAYOUT_LEGACY  Trivy < 0.20: a top-level array of Results (an element that is
 *                        already a flat finding is passed through as it is)
 *   TRIVY_LAYOUT_RESULT  one bare Result object {Target, Vulnerabilities[]...}
 *   TRIVY_LAYOUT_K8S     `trivy k8s`, newer: {ClusterName, Resources: [{Namespace, Kind,
 *                        Name, Metadata, Results[]}]}
 *   TRIVY_LAYOUT_K8S_OLD `trivy k8s`, older: {ClusterName, Vulnerabilities: [resource],
 *                        Misconfigurations: [resource]}
 *   TRIVY_LAYOUT_GRYPE   Grype JSON: {matches: [{vulnerability, artifact, ...}], source,
 *                        distro, descriptor}
 *   TRIVY_LAYOUT_FINDING one flat finding already (has VulnerabilityID, or a misconfig ID
 *                        or secret RuleID): passed through unchanged
 * Licenses[] and CustomResources[] entries of a Result are not findings here.
 *
 * A flat finding is one msgpack map: the report context first, then every key of the
 * finding itself, unchanged (the finding's own key wins over a context key of the same
 * name):
 *   SchemaVersion, CreatedAt, ArtifactName, ArtifactType, ArtifactID, ReportID   (report)
 *   Metadata: {OS, ImageID, RepoTags, RepoDigests}        (report or k8s resource, subset)
 *   Target, Class, Type                                   (the Result; Type is written as
 *                                                          ResultType when the finding has
 *                                                          its own Type, as misconfigs do)
 *   k8s: {cluster, namespace, kind, name, pod}            (k8s layouts; pod only when Kind
 *                                                          is Pod; cluster when not "")
 *   FindingType: "vulnerability" | "misconfiguration" | "secret"
 * The k8s layouts name no artifact: ArtifactName is then the resource's image, from its
 * Metadata.RepoTags[0], else from the Target of its os-pkgs Result without the
 * " (os version)" suffix; it is set on the image's (not "config") Results only.
 * A Grype match becomes, in Trivy's words: CreatedAt (descriptor.timestamp), ArtifactName
 * (source.target, or its userInput), ArtifactType (source.type), Metadata {ImageID,
 * RepoTags}, Scanner {Name, Version}, Distro, FindingType "vulnerability", VulnerabilityID
 * (vulnerability.id), Severity, PkgName, InstalledVersion, PkgType, FixedVersion
 * (fix.versions joined with ", "), Status (fix.state), PrimaryURL (vulnerability.dataSource)
 * and `match`: the whole original match.
 *
 * Pure functions over caller memory; any thread. */
#ifndef VG_SCHEMAS_TRIVY_REPORT_H
#define VG_SCHEMAS_TRIVY_REPORT_H

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"

enum trivy_layout {
    TRIVY_LAYOUT_NONE,
    TRIVY_LAYOUT_REPORT,
    TRIVY_LAYOUT_LEGACY,
    TRIVY_LAYOUT_RESULT,
    TRIVY_LAYOUT_K8S,
    TRIVY_LAYOUT_K8S_OLD,
    TRIVY_LAYOUT_GRYPE,
    TRIVY_LAYOUT_FINDING,
};

/* Called once per finding with the flat finding (a complete msgpack map), valid until the
 * call returns. Returns 0 to go on, or a negative code that stops the split. */
typedef int (*trivy_finding_fn)(void *arg, struct span finding);

/* The layout of doc (one complete msgpack value), from its top-level keys only. */
enum trivy_layout trivy_report_layout(struct span doc);

/* The name of a layout ("trivy report", "grype report", ...). Static storage. */
const char *trivy_layout_name(enum trivy_layout l);

/* Splits the report doc into flat findings and calls fn for each, in report order. The
 * whole report's structure is checked before the first call, so a report that is broken
 * (Results not an array, a finding that is not an object, ...) produces no call at all.
 * Flat findings are built in out (reset before each; its max bounds one finding: twice
 * doc.n plus 64 KiB always suffices). Returns the number of findings (0 for a clean
 * report), VG_EFORMAT with eb set when doc is not one of the layouts or is broken,
 * VG_ELIMIT when a finding does not fit out, or the first negative code fn returned. */
int trivy_report_split(struct span doc, struct buf *out, trivy_finding_fn fn, void *arg,
                       struct errbuf *eb) VG_MUST_USE;

#endif
