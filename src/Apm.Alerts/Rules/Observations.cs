namespace Apm.Alerts.Rules;

/// <summary>One <c>GC.finalizer_info</c> sample: objects waiting in the finalization queue.</summary>
/// <param name="Time">When the sample was taken (the JVM's clock as stamped by the collector).</param>
/// <param name="PendingTotal">Objects waiting for their finalize() to run.</param>
/// <param name="TopClasses">Pending count per class, largest first; may be empty.</param>
public sealed record FinalizerObservation(
    DateTimeOffset Time,
    long PendingTotal,
    IReadOnlyList<(string Class, long Count)> TopClasses) : ITimed;

/// <summary>One <c>GC.class_histogram</c> sample (the collector keeps the classes that matter plus the top N).</summary>
/// <param name="Time">When the histogram was taken.</param>
/// <param name="FinalizerRegistered">Instances of <c>java.lang.ref.Finalizer</c>: objects registered for finalization.</param>
/// <param name="Rows">Instances and bytes per class; a class missing from a sample is unknown, not zero.</param>
public sealed record HistogramObservation(
    DateTimeOffset Time,
    long FinalizerRegistered,
    IReadOnlyList<(string Class, long Instances, long Bytes)> Rows) : ITimed
{
    /// <summary>The collector's marks of the rows that have any (by class name); null or empty when it sent none.</summary>
    public IReadOnlyDictionary<string, HistogramMarks>? Marks { get; init; }
}

/// <summary>
/// One heap/GC sample (perf counters or JMX). A value type of seven 8-byte fields (56 bytes, no object header, no
/// reference): the aggregator keeps hundreds of these per JVM for an hour-long window, for thousands of JVMs.
/// </summary>
public readonly record struct HeapObservation : ITimed
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
    /// <summary>
    /// Samples with <c>Now - window &lt; Time &lt;= Now</c>, oldest first. A view, not a copy, when the source is already in
    /// time order (the engine appends in order): one pass to check the order and two binary searches, no allocation.
    /// Otherwise a sorted copy. The view reads the source list: use it before the list changes.
    /// </summary>
    internal static Window<T> InWindow<T>(IReadOnlyList<T>? items, DateTimeOffset now, TimeSpan window)
        where T : ITimed
    {
        if (items is null || items.Count == 0)
        {
            return new Window<T>([], 0, 0);
        }

        var from = (now - window).UtcTicks;
        var to = now.UtcTicks;
        var sorted = true;
        var previous = long.MinValue;
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            if (item is null)
            {
                throw new ArgumentException($"A {typeof(T).Name} in the state is null.", nameof(items));
            }

            var t = item.Time.UtcTicks;
            if (t < previous)
            {
                sorted = false;
            }

            previous = t;
        }

        if (!sorted)
        {
            var copy = new List<T>(items.Count);
            foreach (var item in items)
            {
                var t = item.Time.UtcTicks;
                if (t > from && t <= to) copy.Add(item);
            }

            copy.Sort((a, b) => a.Time.UtcTicks.CompareTo(b.Time.UtcTicks));
            return new Window<T>(copy, 0, copy.Count);
        }

        var start = FirstAfter(items, from);
        var end = FirstAfter(items, to);
        return new Window<T>(items, start, end - start);
    }

    /// <summary>Index of the first item with a time after <paramref name="ticks"/> in a list in time order.</summary>
    private static int FirstAfter<T>(IReadOnlyList<T> items, long ticks)
        where T : ITimed
    {
        int lo = 0, hi = items.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (items[mid].Time.UtcTicks <= ticks) lo = mid + 1;
            else hi = mid;
        }

        return lo;
    }
}

/// <summary>A sample with a time: what windows are cut by.</summary>
public interface ITimed
{
    /// <summary>When the sample was taken.</summary>
    DateTimeOffset Time { get; }
}

/// <summary>A read-only run of consecutive items of a list (a window's samples, oldest first).</summary>
internal readonly struct Window<T> : IReadOnlyList<T>
{
    private readonly IReadOnlyList<T> _source;
    private readonly int _start;

    public Window(IReadOnlyList<T> source, int start, int count)
    {
        _source = source;
        _start = start;
        Count = count;
    }

    public int Count { get; }

    public T this[int index] =>
        (uint)index < (uint)Count ? _source[_start + index] : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>The items from <paramref name="start"/> on.</summary>
    public Window<T> From(int start) => new(_source, _start + start, Count - start);

    /// <summary>The first <paramref name="count"/> items.</summary>
    public Window<T> Take(int count) => new(_source, _start, count);

    public IEnumerator<T> GetEnumerator()
    {
        for (var i = 0; i < Count; i++) yield return _source[_start + i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>The outcome of one rule on one JVM.</summary>
public sealed record RuleResult
{
    private IReadOnlyDictionary<string, string>? _evidence;
    private Func<IReadOnlyDictionary<string, string>>? _makeEvidence;

    /// <param name="breached">True when the pattern is present in the window.</param>
    /// <param name="summary">One or two sentences for people (e-mail subject/body, API).</param>
    /// <param name="evidence">Named numbers behind the verdict (series over the window, thresholds), stable keys.</param>
    /// <param name="suggestedFixes">What to do, in order of preference; empty when not breached.</param>
    public RuleResult(bool breached, string summary, IReadOnlyDictionary<string, string> evidence, IReadOnlyList<string> suggestedFixes)
    {
        Breached = breached;
        Summary = summary;
        _evidence = evidence;
        SuggestedFixes = suggestedFixes;
    }

    /// <summary>
    /// As the other constructor, with the evidence built on first read: most evaluations change nothing and nobody reads
    /// their evidence, while formatting a window's series is most of a rule's cost. <paramref name="evidence"/> may read
    /// the window it was evaluated on, so read <see cref="Evidence"/> before the observations change (the alert
    /// tracker does, in the same call).
    /// </summary>
    public RuleResult(bool breached, string summary, Func<IReadOnlyDictionary<string, string>> evidence, IReadOnlyList<string> suggestedFixes)
    {
        Breached = breached;
        Summary = summary;
        _makeEvidence = evidence;
        SuggestedFixes = suggestedFixes;
    }

    /// <summary>True when the pattern is present in the window.</summary>
    public bool Breached { get; init; }

    /// <summary>One or two sentences for people (e-mail subject/body, API).</summary>
    public string Summary { get; init; }

    /// <summary>Named numbers behind the verdict (series over the window, thresholds), stable keys.</summary>
    public IReadOnlyDictionary<string, string> Evidence
    {
        get
        {
            if (_evidence is null)
            {
                _evidence = _makeEvidence!();
                _makeEvidence = null;
            }

            return _evidence;
        }

        init
        {
            _evidence = value;
            _makeEvidence = null;
        }
    }

    /// <summary>What to do, in order of preference; empty when not breached.</summary>
    public IReadOnlyList<string> SuggestedFixes { get; init; }

    /// <summary>
    /// True when the window held too little data to judge (too few samples, too short a span). The alert lifecycle treats
    /// it as "no news": a firing alert neither resolves nor fires again on it (after a restart, or while the collector
    /// cannot reach the JVM).
    /// </summary>
    public bool InsufficientData { get; init; }

    private static readonly IReadOnlyDictionary<string, string> NoEvidence = System.Collections.ObjectModel.ReadOnlyDictionary<string, string>.Empty;

    internal static RuleResult NotBreached(string summary, IReadOnlyDictionary<string, string>? evidence = null) =>
        new(false, summary, evidence ?? NoEvidence, []);

    internal static RuleResult NotBreached(string summary, Func<IReadOnlyDictionary<string, string>> evidence) =>
        new(false, summary, evidence, []);

    internal static RuleResult Insufficient(string summary) =>
        new(false, summary, NoEvidence, []) { InsufficientData = true };
}

/// <summary>A leak or GC rule: pure, deterministic, cheap (O(n²) in the samples of one window at most).</summary>
public interface IAlertRule
{
    /// <summary>Stable id used in the API, e-mails and configuration (<c>Apm:Rules:&lt;Id&gt;</c>).</summary>
    string Id { get; }

    /// <summary>Evaluates the rule on the samples inside its window ending at <see cref="JvmRuleState.Now"/>.</summary>
    RuleResult Evaluate(JvmRuleState state);
}

/// <summary>The kinds of observations a rule can read.</summary>
public enum ObservationKind
{
    /// <summary><see cref="JvmRuleState.Finalizer"/>.</summary>
    Finalizer,

    /// <summary><see cref="JvmRuleState.Histograms"/>.</summary>
    Histograms,

    /// <summary><see cref="JvmRuleState.Heap"/>.</summary>
    Heap,
}

/// <summary>
/// A rule whose result depends only on the observations of one kind with <c>Now - Window &lt; Time &lt;= Now</c>, and not on
/// <c>Now</c> otherwise: an engine may reuse its last result while that set of observations is unchanged (finalizer
/// readings and histograms arrive far less often than heap samples, which trigger most evaluations).
/// </summary>
public interface IWindowedRule : IAlertRule
{
    /// <summary>The observations the rule reads.</summary>
    ObservationKind Reads { get; }

    /// <summary>How far back from <c>Now</c> it reads them.</summary>
    TimeSpan Window { get; }
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
