using System.Diagnostics;

namespace Apm.Server;

/// <summary>
/// The process's own resources on /healthz and /metrics, whatever its roles: resident memory, the managed heap (at the
/// last collection, and at the last full collection, which is the best outside view of the live set), the number of full
/// collections and the CPU time used. A soak reads these to see whether a service's memory has a trend, and where: the
/// memory the GC holds from the system (committed) and how much of it is free space between objects (fragmented), the
/// anonymous and file-backed resident pages, and the C allocator's heap in use and freed but held.
/// </summary>
public sealed class ProcessCounterSource : ICounterSource
{
    /// <inheritdoc />
    public IEnumerable<KeyValuePair<string, long>> ReadCounters()
    {
        var last = GC.GetGCMemoryInfo(GCKind.Any);
        var fullBlocking = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        var background = GC.GetGCMemoryInfo(GCKind.Background);
        // The newer of the two kinds of full collection (Index 0: none of that kind yet).
        var full = fullBlocking.Index >= background.Index ? fullBlocking : background;
        using var process = Process.GetCurrentProcess();
        var counters = new List<KeyValuePair<string, long>>(12)
        {
            new("process.resident_memory_bytes", Environment.WorkingSet),
            new("process.managed_heap_bytes", last.HeapSizeBytes),
            new("process.managed_heap_after_full_gc_bytes", full.Index == 0 ? 0 : full.HeapSizeBytes - full.FragmentedBytes),
            new("process.full_gc_count", GC.CollectionCount(2)),
            new("process.cpu_ms", (long)process.TotalProcessorTime.TotalMilliseconds),
            new("process.threads", process.Threads.Count),
        };
        if (last.Index > 0)
        {
            // As of the last collection: before the first one there is nothing to say (not zero).
            counters.Add(new("process.gc_committed_bytes", last.TotalCommittedBytes));
            counters.Add(new("process.gc_fragmented_bytes", last.FragmentedBytes));
        }

        if (ProcessMemory.ReadResidentSplit() is { } split)
        {
            counters.Add(new("process.resident_anonymous_bytes", split.Anonymous));
            counters.Add(new("process.resident_file_bytes", split.File));
        }

        if (ProcessMemory.ReadNativeHeap() is { } native)
        {
            counters.Add(new("process.native_heap_in_use_bytes", native.InUse));
            counters.Add(new("process.native_heap_free_bytes", native.Free));
        }

        return counters;
    }
}
