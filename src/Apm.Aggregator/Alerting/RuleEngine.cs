using Apm.Alerts.Rules;
using Apm.Protocol.V1;

namespace Apm.Aggregator.Alerting;

/// <summary>The rules to run and the windows they read (so the engine knows how much history to keep).</summary>
public sealed class RuleSet
{
    /// <summary>Builds the four rules from their options (null = defaults), leaving out <paramref name="disabled"/> ids.</summary>
    public RuleSet(
        FinalizerBacklogOptions? finalizerBacklog = null,
        TimerRetainedFinalizableOptions? timerRetained = null,
        OldGenGrowthOptions? oldGenGrowth = null,
        GcOverheadOptions? gcOverhead = null,
        IReadOnlySet<string>? disabled = null)
    {
        finalizerBacklog ??= new FinalizerBacklogOptions();
        timerRetained ??= new TimerRetainedFinalizableOptions();
        oldGenGrowth ??= new OldGenGrowthOptions();
        gcOverhead ??= new GcOverheadOptions();
        var rules = new List<IAlertRule>();
        bool On(string id) => disabled is null || !disabled.Contains(id);
        if (On(RuleIds.FinalizerBacklog)) rules.Add(new FinalizerBacklogRule(finalizerBacklog));
        if (On(RuleIds.TimerRetainedFinalizable)) rules.Add(new TimerRetainedFinalizableRule(timerRetained));
        if (On(RuleIds.OldGenGrowth)) rules.Add(new OldGenGrowthRule(oldGenGrowth));
        if (On(RuleIds.GcOverhead)) rules.Add(new GcOverheadRule(gcOverhead));
        Rules = rules;
        FinalizerWindow = finalizerBacklog.Window;
        HistogramWindow = timerRetained.Window;
        HeapWindow = oldGenGrowth.Window > gcOverhead.Window ? oldGenGrowth.Window : gcOverhead.Window;
    }

    /// <summary>The enabled rules.</summary>
    public IReadOnlyList<IAlertRule> Rules { get; }

    /// <summary>History of finalizer readings kept per JVM.</summary>
    public TimeSpan FinalizerWindow { get; }

    /// <summary>History of class histograms kept per JVM.</summary>
    public TimeSpan HistogramWindow { get; }

    /// <summary>History of heap samples kept per JVM.</summary>
    public TimeSpan HeapWindow { get; }
}

/// <summary>
/// Keeps each JVM's recent observations (finalizer readings, class histograms, thinned heap samples), runs the rules on
/// them as messages arrive, and turns the results into alert transitions through an <see cref="AlertTracker"/>.
/// Deterministic: the evaluation time is the time of the message that caused it, so a replay evaluates the same way.
/// Not thread-safe: one consumer thread owns it (it sees every message of the partitions it owns, in order).
/// Memory: per JVM, at most the rules' windows of readings; heap samples thinned to about 720 per heap window.
/// </summary>
public sealed class RuleEngine
{
    private readonly RuleSet _rules;
    private readonly AlertingOptions _options;
    private readonly TimeSpan _heapSpacing;
    private readonly Dictionary<string, JvmWindow> _jvms = new(StringComparer.Ordinal);
    private long _evaluations;
    private long _ruleFailures;
    private long _ruleRuns;
    private long _reused;

    /// <summary>Creates an engine; throws <see cref="ArgumentOutOfRangeException"/> on invalid options.</summary>
    public RuleEngine(RuleSet rules, AlertingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(rules);
        _rules = rules;
        _options = options ?? new AlertingOptions();
        _options.Validate();
        Tracker = new AlertTracker(_options.Lifecycle);
        _heapSpacing = _options.HeapSampleSpacing > TimeSpan.Zero ? _options.HeapSampleSpacing : rules.HeapWindow / 720;
    }

    /// <summary>The alert lifecycle state (active alerts, restore after restart).</summary>
    public AlertTracker Tracker { get; }

    /// <summary>Rule evaluations run (one per JVM per evaluation, all rules).</summary>
    public long Evaluations => _evaluations;

    /// <summary>Rule runs (one rule on one JVM) that computed a result.</summary>
    public long RuleRuns => _ruleRuns;

    /// <summary>Rule results reused because the rule's observations had not changed since its last run.</summary>
    public long ReusedResults => _reused;

    /// <summary>Rule runs that threw (a bug or hostile data); counted and skipped, never fatal.</summary>
    public long RuleFailures => _ruleFailures;

    /// <summary>JVMs with kept observations.</summary>
    public int TrackedJvms => _jvms.Count;

    /// <summary>Readings kept for <paramref name="jvmId"/> (what its window costs in memory); zeros when unknown.</summary>
    public (int Finalizer, int Histograms, int Heap) Kept(string jvmId) =>
        _jvms.TryGetValue(jvmId, out var w) ? (w.Finalizer.Count, w.Histograms.Count, w.Heap.Count) : (0, 0, 0);

    /// <summary>What the last message of <paramref name="jvmId"/> said about it, or null when unknown.</summary>
    public JvmIdentity? Identity(string jvmId) => _jvms.TryGetValue(jvmId, out var w) ? w.Identity : null;

    /// <summary>
    /// Records <paramref name="message"/> (already validated by <see cref="SamplePoints.Validate"/>) and, when the JVM is
    /// due, evaluates its rules. Returns the alert transitions it caused, usually none.
    /// </summary>
    public IReadOnlyList<AlertEvent> Observe(CollectorMessage message) => Observe(message, -1);

    /// <summary>As <see cref="Observe(CollectorMessage)"/>, remembering the Kafka partition the JVM's messages come from (see <see cref="ForgetPartitions"/>).</summary>
    public IReadOnlyList<AlertEvent> Observe(CollectorMessage message, int partition)
    {
        ArgumentNullException.ThrowIfNull(message);
        switch (message.BodyCase)
        {
            case CollectorMessage.BodyOneofCase.Sample:
            {
                var s = message.Sample;
                var w = Window(s.Jvm, partition);
                var t = Time(s.TimeUnixNanos);
                AddHeap(w, s, t);
                return w.LastEvaluated is { } last && t - last < _options.EvaluationInterval ? [] : Evaluate(w, t);
            }

            case CollectorMessage.BodyOneofCase.Finalizer:
            {
                var f = message.Finalizer;
                var w = Window(f.Jvm, partition);
                var t = Time(f.TimeUnixNanos);
                w.Finalizer.Add(new FinalizerObservation(t, f.PendingTotal, f.Classes.Select(c => (c.ClassName, c.Count)).ToList()));
                Trim(w.Finalizer, t - _rules.FinalizerWindow);
                w.FinalizerVersion++;
                return Evaluate(w, t);
            }

            case CollectorMessage.BodyOneofCase.Histogram:
            {
                var h = message.Histogram;
                var w = Window(h.Jvm, partition);
                var t = Time(h.TimeUnixNanos);
                w.Histograms.Add(new HistogramObservation(t, h.FinalizerRegistered, h.Rows.Select(r => (r.ClassName, r.Instances, r.Bytes)).ToList())
                {
                    Marks = Marks(h),
                });
                Trim(w.Histograms, t - _rules.HistogramWindow);
                w.HistogramVersion++;
                return Evaluate(w, t);
            }

            case CollectorMessage.BodyOneofCase.Status when message.Status.State == JvmStatus.Types.State.Gone:
            {
                var id = message.Status.Jvm.JvmId;
                _jvms.Remove(id);
                return Tracker.Retire(id, Time(message.Status.TimeUnixNanos), "The JVM exited.");
            }

            default:
                return [];
        }
    }

    /// <summary>
    /// Another aggregator takes these partitions (a rebalance): drop the windows and the lifecycle state of their JVMs
    /// without emitting anything. The new owner rebuilds the windows from the messages it consumes (rules answer
    /// "insufficient data" meanwhile, which neither fires nor resolves) and restores the firing alerts from InfluxDB.
    /// Returns how many JVMs were dropped.
    /// </summary>
    public int ForgetPartitions(IReadOnlySet<int> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        var gone = _jvms.Where(kv => partitions.Contains(kv.Value.Partition)).Select(kv => kv.Key).ToList();
        foreach (var id in gone)
        {
            _jvms.Remove(id);
            Tracker.Forget(id);
        }

        return gone.Count;
    }

    private JvmWindow Window(JvmIdentity identity, int partition)
    {
        if (!_jvms.TryGetValue(identity.JvmId, out var w))
        {
            w = new JvmWindow();
            _jvms[identity.JvmId] = w;
        }

        if (partition >= 0) w.Partition = partition;
        // Finalizer and histogram messages carry a shorter identity than samples; keep the richest one seen.
        if (w.Identity is null || !string.IsNullOrEmpty(identity.MainClass)) w.Identity = identity;
        return w;
    }

    private void AddHeap(JvmWindow w, JvmSample s, DateTimeOffset t)
    {
        long oldUsed = 0, oldMax = 0, collections = 0;
        double gcTime = 0;
        foreach (var space in s.Spaces)
        {
            if (space.Pool != "old") continue;
            oldUsed += space.UsedBytes;
            oldMax = Math.Max(oldMax, space.MaxBytes);
        }

        foreach (var c in s.Collectors)
        {
            collections += c.Invocations;
            gcTime += c.TimeSeconds;
        }

        var observation = new HeapObservation(t, oldUsed, oldMax, collections, gcTime, s.UptimeSeconds, OldCollections(s));
        // Thin: keep one sample per spacing, plus the first sample after every collection (the post-GC floor the
        // old-generation rule needs), plus restarts (uptime going down).
        var keep = w.Heap.Count == 0
            || t - w.Heap[^1].Time >= _heapSpacing
            || collections != w.Heap[^1].CollectionsTotal
            || s.UptimeSeconds < w.Heap[^1].UptimeSeconds;
        if (!keep) return;
        w.Heap.Add(observation);
        Trim(w.Heap, t - _rules.HeapWindow);
        w.HeapVersion++;
    }

    /// <summary>
    /// Old/full collections when the collector layout tells them apart: the serial and parallel collectors count them in
    /// collector 1. G1, ZGC and Shenandoah reclaim the old generation in other ways, so null (the rule then uses a lower
    /// envelope of the samples instead).
    /// </summary>
    private static long? OldCollections(JvmSample s)
    {
        Collector? young = null, old = null;
        foreach (var c in s.Collectors)
        {
            if (c.Index == 0) young = c;
            else if (c.Index == 1) old = c;
        }

        if (young is null || old is null) return null;
        return young.Name is "Copy" or "PSScavenge" or "ParNew" or "Serial young collection pauses" or "Parallel young collection pauses"
            ? old.Invocations
            : null;
    }

    private IReadOnlyList<AlertEvent> Evaluate(JvmWindow w, DateTimeOffset t)
    {
        // Readings of different kinds are stamped by different clocks in the collector: keep time non-decreasing per JVM.
        if (w.LastEvaluated is { } last && t < last) t = last;
        w.LastEvaluated = t;
        _evaluations++;
        var state = new JvmRuleState(w.Identity!.JvmId, t, w.Finalizer, w.Histograms, w.Heap);
        List<AlertEvent>? events = null;
        var rules = _rules.Rules;
        w.Cache ??= new CachedResult[rules.Count];
        for (var r = 0; r < rules.Count; r++)
        {
            var rule = rules[r];
            RuleResult result;
            WindowKey? key = _options.ReuseResults && rule is IWindowedRule windowed ? Signature(w, windowed, t) : null;
            if (key is { } k && w.Cache[r] is { } cached && cached.Key == k)
            {
                // Same observations in the window as last time: the same result (pure rule), only time moves on.
                result = cached.Result;
                _reused++;
            }
            else
            {
                try
                {
                    result = rule.Evaluate(state);
                    _ruleRuns++;
                }
#pragma warning disable CA1031 // One rule failing on one JVM must not stop the consumer or the other rules.
                catch (Exception)
#pragma warning restore CA1031
                {
                    _ruleFailures++;
                    w.Cache[r] = null;
                    continue;
                }

                w.Cache[r] = key is { } computed ? new CachedResult(computed, result) : null;
            }

            var transitions = Tracker.Observe(state.JvmId, rule.Id, t, result);
            if (transitions.Count > 0) (events ??= []).AddRange(transitions);
        }

        return events ?? (IReadOnlyList<AlertEvent>)[];
    }

    /// <summary>
    /// What identifies the observations a windowed rule sees at <paramref name="now"/>: the list's version (bumped on every
    /// change, so a cached result's lazy evidence never reads a changed list) and the first and last index inside the
    /// window (-1 when none is).
    /// </summary>
    private static WindowKey Signature(JvmWindow w, IWindowedRule rule, DateTimeOffset now) => rule.Reads switch
    {
        ObservationKind.Finalizer => Key(w.Finalizer, w.FinalizerVersion, now - rule.Window, now),
        ObservationKind.Histograms => Key(w.Histograms, w.HistogramVersion, now - rule.Window, now),
        ObservationKind.Heap => Key(w.Heap, w.HeapVersion, now - rule.Window, now),
        _ => default,
    };

    private static WindowKey Key<T>(List<T> items, long version, DateTimeOffset from, DateTimeOffset to)
        where T : ITimed
    {
        int first = -1, last = -1;
        for (var i = 0; i < items.Count; i++)
        {
            var time = items[i].Time;
            if (time > from && time <= to)
            {
                if (first < 0) first = i;
                last = i;
            }
        }

        return new WindowKey(version, first, last);
    }

    /// <summary>The rows the collector marked (timer task, finalizable, in step with Finalizer); null when none is.</summary>
    private static Dictionary<string, HistogramMarks>? Marks(ClassHistogramSample h)
    {
        Dictionary<string, HistogramMarks>? marks = null;
        foreach (var r in h.Rows)
        {
            var m = HistogramMarkParser.Parse(r.KeptBecause);
            if (m == HistogramMarks.None) continue;
            marks ??= new Dictionary<string, HistogramMarks>(StringComparer.Ordinal);
            marks[r.ClassName] = marks.GetValueOrDefault(r.ClassName) | m;
        }

        return marks;
    }

    private static DateTimeOffset Time(long unixNanos) => DateTimeOffset.FromUnixTimeMilliseconds(unixNanos / 1_000_000);

    /// <summary>Drops readings at or before <paramref name="from"/> (they arrive in time order, so from the front).</summary>
    private static void Trim<T>(List<T> list, DateTimeOffset from)
        where T : ITimed
    {
        var n = 0;
        while (n < list.Count && list[n].Time <= from) n++;
        if (n > 0) list.RemoveRange(0, n);
    }

    private sealed class JvmWindow
    {
        public JvmIdentity? Identity { get; set; }

        public List<FinalizerObservation> Finalizer { get; } = [];

        public List<HistogramObservation> Histograms { get; } = [];

        public List<HeapObservation> Heap { get; } = [];

        public DateTimeOffset? LastEvaluated { get; set; }

        public int Partition { get; set; } = -1;

        public long FinalizerVersion { get; set; }

        public long HistogramVersion { get; set; }

        public long HeapVersion { get; set; }

        /// <summary>The last result of each rule (by index in the rule set) with the window it was computed on.</summary>
        public CachedResult?[]? Cache { get; set; }
    }

    private readonly record struct WindowKey(long Version, int First, int Last);

    private sealed record CachedResult(WindowKey Key, RuleResult Result);
}
