using System.Diagnostics.Tracing;

namespace Apm.Benchmarks;

/// <summary>
/// What the process allocates while an action runs: all bytes (exact, from the GC's counter) and the part on the
/// large-object heap (from the runtime's allocation-tick events, one per ~100 KB allocated, so the large figure is
/// within about 100 KB per tick of the truth). Measures the whole process: run nothing else beside the action.
/// </summary>
internal sealed class AllocationMeter : EventListener
{
    private const int AllocationTickEventId = 10;
    private long _large;

    private readonly Dictionary<string, long> _largeByType = new(StringComparer.Ordinal);
    private bool _counting;

    /// <summary>Bytes per run of <paramref name="action"/>, averaged over <paramref name="runs"/> runs.</summary>
    public static async Task<(double Total, double Large)> MeasureAsync(int runs, Func<Task> action)
    {
        var (total, large, _) = await MeasureByTypeAsync(runs, action).ConfigureAwait(false);
        return (total, large);
    }

    /// <summary>
    /// As <see cref="MeasureAsync"/>, and the large-object bytes per run by the type of the object that ended each
    /// ~100 KB tick (the allocation-tick event names it): where the large-object heap's churn comes from.
    /// </summary>
    public static async Task<(double Total, double Large, IReadOnlyList<(string Type, double Bytes)> LargeByType)> MeasureByTypeAsync(int runs, Func<Task> action)
    {
        using var meter = new AllocationMeter();
        await Task.Delay(1000).ConfigureAwait(false); // the event session starts asynchronously
        var large0 = Interlocked.Read(ref meter._large);
        lock (meter._largeByType) meter._counting = true;
        var total0 = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < runs; i++) await action().ConfigureAwait(false);
        var total = GC.GetTotalAllocatedBytes(precise: true) - total0;
        await Task.Delay(2000).ConfigureAwait(false); // events arrive on the listener's thread a little later
        var large = Interlocked.Read(ref meter._large) - large0;
        List<(string, double)> byType;
        lock (meter._largeByType)
        {
            meter._counting = false;
            byType = [.. meter._largeByType.OrderByDescending(t => t.Value).Select(t => (t.Key, (double)t.Value / runs))];
        }

        return ((double)total / runs, (double)large / runs, byType);
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(eventSource, EventLevel.Verbose, (EventKeywords)0x1); // GC
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (eventData.EventId != AllocationTickEventId || eventData.Payload is null || eventData.PayloadNames is null) return;
        var kind = eventData.PayloadNames.IndexOf("AllocationKind");
        var amount = eventData.PayloadNames.IndexOf("AllocationAmount64");
        if (kind < 0 || amount < 0) return;
        if (Convert.ToInt32(eventData.Payload[kind], System.Globalization.CultureInfo.InvariantCulture) != 1) return;
        var bytes = Convert.ToInt64(eventData.Payload[amount], System.Globalization.CultureInfo.InvariantCulture);
        Interlocked.Add(ref _large, bytes);
        var typeIndex = eventData.PayloadNames.IndexOf("TypeName");
        var type = typeIndex >= 0 ? eventData.Payload[typeIndex] as string ?? "?" : "?";
        lock (_largeByType)
        {
            if (_counting) _largeByType[type] = _largeByType.GetValueOrDefault(type) + bytes;
        }
    }
}
