using Apm.Server;

namespace Apm.Dashboard.Tests;

public sealed class ProcessCounterTests
{
    [Fact]
    public void The_process_counters_follow_a_full_collection_and_reach_the_prometheus_text()
    {
        var before = Read();
        // Keep 64 MiB alive across a full collection: the live-set counter must see it.
        var kept = new byte[64][];
        for (var i = 0; i < kept.Length; i++) kept[i] = new byte[1 << 20];
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        var after = Read();
        GC.KeepAlive(kept);

        Assert.True(after["process.full_gc_count"] > before["process.full_gc_count"], "a forced full collection was not counted");
        Assert.True(after["process.managed_heap_after_full_gc_bytes"] >= 64L << 20,
            $"the live set after a full collection ({after["process.managed_heap_after_full_gc_bytes"]:N0} B) misses the 64 MiB kept alive");
        Assert.True(after["process.resident_memory_bytes"] >= after["process.managed_heap_after_full_gc_bytes"],
            "resident memory is below the managed live set");
        Assert.True(after["process.cpu_ms"] > 0);
        Assert.True(after["process.threads"] > 0);

        var text = MetricsEndpoint.Render([new ProcessCounterSource()]);
        Assert.Matches(@"(?m)^apm_process_resident_memory_bytes [1-9][0-9]*$", text);
        Assert.Matches(@"(?m)^apm_process_managed_heap_after_full_gc_bytes [1-9][0-9]*$", text);
    }

    private static Dictionary<string, long> Read() => new ProcessCounterSource().ReadCounters().ToDictionary(StringComparer.Ordinal);
}
