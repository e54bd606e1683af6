using Apm.Alerts.Rules;

namespace Apm.Aggregator.Alerting;

/// <summary>Rule evaluation in the aggregator, bound from <c>Apm:Alerts</c> (env <c>Apm__Alerts__*</c>); rules from <c>Apm:Rules:&lt;RuleId&gt;</c>.</summary>
public sealed class AlertingOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Apm:Alerts";

    /// <summary>Evaluate rules at all (off: samples are stored, no alerts).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// A JVM's rules run at most this often in sample time (and on every finalizer or histogram reading): an evaluation of
    /// all four rules costs about 10-20 µs of CPU (the `rules` benchmark), so this bounds the CPU a large fleet costs.
    /// </summary>
    public TimeSpan EvaluationInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Heap samples kept for the rules are thinned to at most one per this interval (plus every sample right after a
    /// collection); 0 = one per (longest heap window / 720). Bounds memory to about 720 samples per JVM per window.
    /// </summary>
    public TimeSpan HeapSampleSpacing { get; set; } = TimeSpan.Zero;

    /// <summary>Reuse a windowed rule's last result while its observations are unchanged (off only in the test that checks it changes nothing).</summary>
    internal bool ReuseResults { get; set; } = true;

    /// <summary>Pending → firing → resolved timing (<c>Apm:Alerts:Lifecycle:*</c>).</summary>
    public AlertTrackerOptions Lifecycle { get; set; } = new();

    /// <summary>Rules switched off by id (comma-separated in the environment: <c>Apm__Alerts__Disabled=GcOverhead</c>).</summary>
    public string Disabled { get; set; } = "";

    /// <summary>
    /// Rules whose firing asks the JVM's collector for a heap dump, triaged at the collector (comma-separated; empty = none).
    /// A dump pauses the JVM (a full GC, then writing every live object), so only the finalizer rules do it by default.
    /// </summary>
    public string HeapDumpRules { get; set; } = "FinalizerBacklog,TimerRetainedFinalizable";

    /// <summary>A dump command the collector has not started within this is refused as expired.</summary>
    public TimeSpan HeapDumpExpiry { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The ids in <see cref="HeapDumpRules"/>.</summary>
    public IReadOnlySet<string> HeapDumpRuleSet() =>
        new HashSet<string>(HeapDumpRules.Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.Ordinal);

    /// <summary>Validates the timing; throws <see cref="ArgumentOutOfRangeException"/> naming the setting.</summary>
    public void Validate()
    {
        if (EvaluationInterval < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(EvaluationInterval), EvaluationInterval, "Apm:Alerts:EvaluationInterval must not be negative.");
        if (HeapSampleSpacing < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(HeapSampleSpacing), HeapSampleSpacing, "Apm:Alerts:HeapSampleSpacing must not be negative.");
    }

    /// <summary>The ids in <see cref="Disabled"/>.</summary>
    public IReadOnlySet<string> DisabledRules() =>
        new HashSet<string>(Disabled.Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.Ordinal);
}
