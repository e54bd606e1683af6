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

    [Fact]
    public void The_native_heap_and_anonymous_pages_see_a_native_allocation()
    {
        Assert.True(OperatingSystem.IsLinux(), "this test reads /proc/self/status and glibc's mallinfo2: Linux only");
        var before = Read();
        Assert.True(before.ContainsKey("process.native_heap_in_use_bytes"), "glibc's mallinfo2 was not read");
        Assert.True(before.ContainsKey("process.resident_anonymous_bytes"), "/proc/self/status was not read");
        const int size = 64 << 20;
        unsafe
        {
            // malloc of 64 MiB (an mmapped block in glibc), every page touched so that it is resident.
            var block = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(size);
            try
            {
                new Span<byte>(block, size).Fill(1);
                var during = Read();
                Assert.InRange(during["process.native_heap_in_use_bytes"] - before["process.native_heap_in_use_bytes"], size, size + (8L << 20));
                Assert.True(during["process.resident_anonymous_bytes"] - before["process.resident_anonymous_bytes"] >= size * 3L / 4,
                    $"anonymous resident pages rose by {during["process.resident_anonymous_bytes"] - before["process.resident_anonymous_bytes"]:N0} B only");
            }
            finally
            {
                System.Runtime.InteropServices.NativeMemory.Free(block);
            }
        }

        GC.Collect(); // the GC's committed size is as of its last collection
        var after = Read();
        Assert.True(after["process.native_heap_in_use_bytes"] - before["process.native_heap_in_use_bytes"] < size / 2, "the freed block is still counted");
        Assert.True(after["process.gc_committed_bytes"] >= after["process.managed_heap_bytes"], "the GC holds less memory than its heap's size");
    }

    [Fact]
    public void The_trimmer_gives_freed_c_heap_pages_back_and_counts_them()
    {
        Assert.True(OperatingSystem.IsLinux(), "this test uses glibc's malloc_trim and /proc/self/status: Linux only");
        var trimmer = new NativeHeapTrimmer(new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build(),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<NativeHeapTrimmer>.Instance);
        trimmer.TrimOnce(0); // start from a trimmed heap
        var (trimsBefore, bytesBefore) = (trimmer.Trims, trimmer.TrimmedBytes);
        const int blocks = 200_000;
        const int size = 512;
        var kept = new List<nint>();
        unsafe
        {
            // About 100 MB of small blocks (from an arena, not mmapped), every page touched; then all but every 64th
            // freed: the arena holds the freed pages between the kept blocks, as it does for librdkafka's buffers.
            var all = new nint[blocks];
            for (var i = 0; i < blocks; i++)
            {
                var p = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(size);
                new Span<byte>(p, size).Fill(7);
                all[i] = (nint)p;
            }

            for (var i = 0; i < blocks; i++)
            {
                if (i % 64 == 0) kept.Add(all[i]);
                else System.Runtime.InteropServices.NativeMemory.Free((void*)all[i]);
            }
        }

        try
        {
            var free = ProcessMemory.ReadNativeHeap()!.Value.Free;
            Assert.True(free > 80L << 20, $"only {free:N0} B free in the C heap after freeing about 98 MB");
            var given = trimmer.TrimOnce();
            Assert.True(given >= 40L << 20, $"the trim gave back {given:N0} B of about 98 MB freed");
            var counters = trimmer.ReadCounters().ToDictionary(StringComparer.Ordinal);
            Assert.Equal(trimsBefore + 1, counters["process.native_heap_trims"]);
            Assert.Equal(bytesBefore + given, counters["process.native_heap_trimmed_bytes"]);
        }
        finally
        {
            unsafe
            {
                foreach (var p in kept) System.Runtime.InteropServices.NativeMemory.Free((void*)p);
            }
        }
    }

    [Theory]
    [InlineData("Name:\tapm\nVmRSS:\t  300 kB\nRssAnon:\t     200 kB\nRssFile:\t      96 kB\nRssShmem:\t 4 kB\n", 204800L, 98304L)]
    [InlineData("RssFile: 0 kB\nRssAnon: 1 kB", 1024L, 0L)]
    public void The_resident_split_is_read_from_the_status_lines(string status, long anonymous, long file)
    {
        var split = ProcessMemory.ParseResidentSplit(status);
        Assert.Equal((anonymous, file), split);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("RssAnon: 12 kB")]
    [InlineData("RssAnon: many kB\nRssFile: 3 kB")]
    public void A_status_without_both_lines_gives_no_split(string? status) => Assert.Null(ProcessMemory.ParseResidentSplit(status));

    private static Dictionary<string, long> Read() => new ProcessCounterSource().ReadCounters().ToDictionary(StringComparer.Ordinal);
}
