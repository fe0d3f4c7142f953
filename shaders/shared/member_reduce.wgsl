// Workgroup-memory sums over the WG threads of one member (its segment of the workgroup),
// for a model's `rhs_member`. Import after shared/rhs_bindings; works unchanged inside a
// fused step kernel (shared/fused_bindings defines the same names). With MPW members per
// workgroup each member sums in its own WG-long part of the array, with the same tree as
// one member per workgroup: results are bit-for-bit those of that layout at the same WG.
// Contains workgroup barriers: call from uniform control flow (every segment of the
// workgroup calls it the same number of times).

var<workgroup> member_partial: array<vec2<Real>, WG * MPW>;

// (Σ a, Σ b) over the member's WG threads (`lid` = index within the segment); every thread
// of the segment gets the totals.
fn member_sum2(lid: u32, a: Real, b: Real) -> vec2<Real> {
    let base = rhs_segment * WG;
    member_partial[base + lid] = vec2<Real>(a, b);
    workgroupBarrier();
    for (var s: u32 = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            member_partial[base + lid] = member_partial[base + lid] + member_partial[base + lid + s];
        }
        workgroupBarrier();
    }
    let r = member_partial[base];
    workgroupBarrier();
    return r;
}
