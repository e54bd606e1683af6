namespace Apm.Alerts.Rules;

/// <summary>One <c>GC.finalizer_info</c> sample: objects waiting in the finalization queue.</summary>
/// <param name="Time">When the sample was taken (the JVM's clock as stamped by the collector).</param>
/// <param name="PendingTotal">Objects waiting for their finalize() to run.</param>
/// <param name="TopClasses">Pending count per class, largest first; may be empty.</param>
public sealed record FinalizerObservation(
    DateTimeOffset Time,
    long PendingTotal,
    IReadOnlyList<(string Class, long Count)> TopClasses);

/// <summary>One <c>GC.class_histogram</c> sample (the collector keeps the classes that matter plus the top N).</summary>
/// <param name="Time">When the histogram was taken.</param>
/// <param name="FinalizerRegistered">Instances of <c>java.lang.ref.Finalizer</c>: objects registered for finalization.</param>
/// <param name="Rows">Instances and bytes per class; a class missing from a sample is unknown, not zero.</param>
public sealed record HistogramObservation(
    DateTimeOffset Time,
    long FinalizerRegistered,
    IReadOnlyList<(string Class, long Instances, long Bytes)> Rows)
{
    /// <summary>The collector's marks of the rows that have any (by class name); null or empty when it sent none.</summary>
    public IReadOnlyDictionary<string, HistogramMarks>? Marks { get; init; }
}

/// <summary>
/// One heap/GC sample (perf counters or JMX). A value type of seven 8-byte fields (56 bytes, no object header, no
/// reference): the aggregator keeps hundreds of these per JVM for an hour-long window, for thousands of JVMs.
/// </summary>
public readonly record struct HeapObservation
{
    private readonly long _utcTicks;
    private readonly long _oldCollections;

    /// <param name="time">When the sample was taken (kept in UTC).</param>
    /// <param name="oldUsedBytes">Old-generation bytes in use.</param>
    /// <param name="oldMaxBytes">Old-generation capacity limit; 0 or negative when unknown.</param>
    /// <param name="collectionsTotal">Invocations of all collectors since start (cumulative).</param>
    /// <param name="gcTimeSeconds">Time spent in GC since start (cumulative).</param>
    /// <param name="uptimeSeconds">JVM uptime; a decrease means the JVM restarted.</param>
    /// <param name="oldCollections">Old/full collections since start, when the collector can tell them apart.</param>
    public HeapObservation(DateTimeOffset time, long oldUsedBytes, long oldMaxBytes, long collectionsTotal, double gcTimeSeconds, double uptimeSeconds,
        long? oldCollections = null)
    {
        _utcTicks = time.UtcTicks;
        OldUsedBytes = oldUsedBytes;
        OldMaxBytes = oldMaxBytes;
        CollectionsTotal = collectionsTotal;
        GcTimeSeconds = gcTimeSeconds;
        UptimeSeconds = uptimeSeconds;
        _oldCollections = oldCollections is { } n && n >= 0 ? n : -1;
    }

    /// <summary>When the sample was taken, in UTC.</summary>
    public DateTimeOffset Time => new(_utcTicks, TimeSpan.Zero);

    /// <summary>Old-generation bytes in use.</summary>
    public long OldUsedBytes { get; }

    /// <summary>Old-generation capacity limit; 0 or negative when unknown.</summary>
    public long OldMaxBytes { get; }

    /// <summary>Invocations of all collectors since start (cumulative).</summary>
    public long CollectionsTotal { get; }

    /// <summary>Time spent in GC since start (cumulative).</summary>
    public double GcTimeSeconds { get; }

    /// <summary>JVM uptime; a decrease means the JVM restarted.</summary>
    public double UptimeSeconds { get; }

    /// <summary>Old/full collections since start, when the collector can tell them apart; otherwise null.</summary>
    public long? OldCollections => _oldCollections >= 0 ? _oldCollections : null;
}

/// <summary>Everything the rules know about one JVM at one evaluation; the rules read only the part inside their window.</summary>
/// <param name="JvmId">The JVM the samples belong to.</param>
/// <param name="Now">Evaluation time: windows end here (passed in so evaluation is deterministic).</param>
/// <param name="Finalizer">Finalizer-queue samples, any order.</param>
/// <param name="Histograms">Class histograms, any order.</param>
/// <param name="Heap">Heap/GC samples, any order.</param>
public sealed record JvmRuleState(
    string JvmId,
    DateTimeOffset Now,
    IReadOnlyList<FinalizerObservation> Finalizer,
    IReadOnlyList<HistogramObservation> Histograms,
    IReadOnlyList<HeapObservation> Heap)
{
    /// <summary>Samples with <c>Now - window &lt; Time &lt;= Now</c>, oldest first.</summary>
    internal static List<T> InWindow<T>(IReadOnlyList<T>? items, Func<T, DateTimeOffset> time, DateTimeOffset now, TimeSpan window)
    {
        var from = now - window;
        var list = new List<T>();
        if (items is null)
        {
            return list;
        }

        foreach (var item in items)
        {
            if (item is null)
            {
                throw new ArgumentException($"A {typeof(T).Name} in the state is null.", nameof(items));
            }

            var t = time(item);
            if (t > from && t <= now)
            {
                list.Add(item);
            }
        }

        list.Sort((a, b) => time(a).CompareTo(time(b)));
        return list;
    }
}

/// <summary>The outcome of one rule on one JVM.</summary>
/// <param name="Breached">True when the pattern is present in the window.</param>
/// <param name="Summary">One or two sentences for people (e-mail subject/body, API).</param>
/// <param name="Evidence">Named numbers behind the verdict (series over the window, thresholds), stable keys.</param>
/// <param name="SuggestedFixes">What to do, in order of preference; empty when not breached.</param>
public sealed record RuleResult(
    bool Breached,
    string Summary,
    IReadOnlyDictionary<string, string> Evidence,
    IReadOnlyList<string> SuggestedFixes)
{
    /// <summary>
    /// True when the window held too little data to judge (too few samples, too short a span). The alert lifecycle treats
    /// it as "no news": a firing alert neither resolves nor fires again on it (after a restart, or while the collector
    /// cannot reach the JVM).
    /// </summary>
    public bool InsufficientData { get; init; }

    internal static RuleResult NotBreached(string summary, IReadOnlyDictionary<string, string>? evidence = null) =>
        new(false, summary, evidence ?? new Dictionary<string, string>(), []);

    internal static RuleResult Insufficient(string summary) =>
        new(false, summary, new Dictionary<string, string>(), []) { InsufficientData = true };
}

/// <summary>A leak or GC rule: pure, deterministic, cheap (O(n²) in the samples of one window at most).</summary>
public interface IAlertRule
{
    /// <summary>Stable id used in the API, e-mails and configuration (<c>Apm:Rules:&lt;Id&gt;</c>).</summary>
    string Id { get; }

    /// <summary>Evaluates the rule on the samples inside its window ending at <see cref="JvmRuleState.Now"/>.</summary>
    RuleResult Evaluate(JvmRuleState state);
}

/// <summary>The rule ids, as used in configuration keys, the API and e-mails.</summary>
public static class RuleIds
{
    /// <summary>Finalization queue keeps growing and does not drain.</summary>
    public const string FinalizerBacklog = nameof(FinalizerBacklog);

    /// <summary>Finalizers grow in step with a finalizable class and a timer task class (CancelTimer pattern).</summary>
    public const string TimerRetainedFinalizable = nameof(TimerRetainedFinalizable);

    /// <summary>Old generation after collections keeps growing.</summary>
    public const string OldGenGrowth = nameof(OldGenGrowth);

    /// <summary>Share of wall time spent in GC above a threshold.</summary>
    public const string GcOverhead = nameof(GcOverhead);
}
