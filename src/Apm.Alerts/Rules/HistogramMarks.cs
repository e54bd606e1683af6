namespace Apm.Alerts.Rules;

/// <summary>
/// What the collector knew about a histogram row (its <c>kept_because</c> reasons, agent-protocol/PROTOCOL.md) that the
/// timer rule can use. Rows without a mark, and histograms from collectors that send none, fall back to the rule's
/// growth and name heuristics.
/// </summary>
[Flags]
public enum HistogramMarks
{
    /// <summary>No usable mark.</summary>
    None = 0,

    /// <summary><c>timer-task</c>: a subclass of <c>java.util.TimerTask</c> (from <c>VM.class_hierarchy</c>, or by name when the JVM lacks it).</summary>
    TimerTask = 1,

    /// <summary><c>finalizer-queue</c>: seen in the JVM's finalization queue, so it overrides <c>finalize()</c>.</summary>
    FinalizerQueue = 2,

    /// <summary><c>finalizer-step</c>: grew in step with <c>java.lang.ref.Finalizer</c> between two histograms.</summary>
    FinalizerStep = 4,
}

/// <summary>Reads a row's <c>kept_because</c> list.</summary>
public static class HistogramMarkParser
{
    /// <summary>The marks in a comma-separated <c>kept_because</c> value; unknown reasons are ignored (the list only grows).</summary>
    public static HistogramMarks Parse(string? keptBecause)
    {
        if (string.IsNullOrEmpty(keptBecause)) return HistogramMarks.None;
        var marks = HistogramMarks.None;
        foreach (var reason in keptBecause.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            marks |= reason switch
            {
                "timer-task" => HistogramMarks.TimerTask,
                "finalizer-queue" => HistogramMarks.FinalizerQueue,
                "finalizer-step" => HistogramMarks.FinalizerStep,
                _ => HistogramMarks.None,
            };
        }

        return marks;
    }
}
