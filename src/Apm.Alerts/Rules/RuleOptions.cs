using System.Globalization;

namespace Apm.Alerts.Rules;

/// <summary>Options of <see cref="FinalizerBacklogRule"/>, bound from <c>Apm:Rules:FinalizerBacklog:*</c>.</summary>
public sealed class FinalizerBacklogOptions
{
    /// <summary>How far back the trend is measured.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Minimum Theil–Sen slope of the pending count, in objects per second.</summary>
    public double Threshold { get; set; } = 0.5;

    /// <summary>Fewest samples in the window before the rule judges at all.</summary>
    public int MinSamples { get; set; } = 6;

    /// <summary>The last pending count must exceed the first by at least this many objects.</summary>
    public long MinRise { get; set; } = 100;

    /// <summary>Share of the window (its last part) checked for a drain.</summary>
    public double DrainTailFraction { get; set; } = 0.25;

    /// <summary>A pending count at or below this in the tail means the queue drained.</summary>
    public long DrainLevel { get; set; } = 10;

    /// <summary>How many queue classes the alert names.</summary>
    public int TopClasses { get; set; } = 5;

    internal void Validate()
    {
        Checks.Positive(Window, nameof(Window));
        Checks.Positive(Threshold, nameof(Threshold));
        Checks.AtLeast(MinSamples, 3, nameof(MinSamples));
        Checks.AtLeast(MinRise, 0, nameof(MinRise));
        Checks.Fraction(DrainTailFraction, nameof(DrainTailFraction));
        Checks.AtLeast(DrainLevel, 0, nameof(DrainLevel));
        Checks.AtLeast(TopClasses, 1, nameof(TopClasses));
    }
}

/// <summary>Options of <see cref="TimerRetainedFinalizableRule"/>, bound from <c>Apm:Rules:TimerRetainedFinalizable:*</c>.</summary>
public sealed class TimerRetainedFinalizableOptions
{
    /// <summary>How far back histograms are compared (histograms are taken every 10 minutes by default).</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Minimum correlation of per-interval growths between Finalizer and a candidate class.</summary>
    public double Threshold { get; set; } = 0.9;

    /// <summary>Fewest histograms in the window (at least 3: two intervals).</summary>
    public int MinSamples { get; set; } = 3;

    /// <summary>Finalizer must grow by at least this many instances over the window.</summary>
    public long MinGrowth { get; set; } = 100;

    /// <summary>Lowest accepted ratio of a class's growth to Finalizer's growth.</summary>
    public double MinRatio { get; set; } = 0.8;

    /// <summary>Highest accepted ratio of a class's growth to Finalizer's growth.</summary>
    public double MaxRatio { get; set; } = 1.25;

    /// <summary>Extra substrings that mark a timer task class (besides "…Task", "TimerTask" and classes nested in the finalizable class).</summary>
    public IList<string> TaskPatterns { get; set; } = [];

    internal void Validate()
    {
        Checks.Positive(Window, nameof(Window));
        if (!(Threshold > -1 && Threshold < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Threshold), Threshold, "Threshold is a correlation and must lie in (-1, 1).");
        }

        Checks.AtLeast(MinSamples, 3, nameof(MinSamples));
        Checks.AtLeast(MinGrowth, 1, nameof(MinGrowth));
        Checks.Positive(MinRatio, nameof(MinRatio));
        if (MaxRatio < MinRatio)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRatio), MaxRatio, $"MaxRatio must be at least MinRatio ({MinRatio.ToString(CultureInfo.InvariantCulture)}).");
        }

        ArgumentNullException.ThrowIfNull(TaskPatterns, nameof(TaskPatterns));
    }
}

/// <summary>Options of <see cref="OldGenGrowthRule"/>, bound from <c>Apm:Rules:OldGenGrowth:*</c>.</summary>
public sealed class OldGenGrowthOptions
{
    /// <summary>How far back the post-collection floor is tracked.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Minimum slope of the post-collection floor, as a fraction of the old generation's max per hour.</summary>
    public double Threshold { get; set; } = 0.05;

    /// <summary>Fewest floor points (one per old collection or sub-window) before the rule judges.</summary>
    public int MinSamples { get; set; } = 4;

    /// <summary>Sub-windows used for the lower envelope when old collections are not counted.</summary>
    public int SubWindows { get; set; } = 6;

    /// <summary>
    /// Shortest time the floor points must span before the rule judges; zero means a quarter of <see cref="Window"/>.
    /// A JVM that just started fills its old generation with long-lived start-up objects: a few collections seconds
    /// apart would otherwise extrapolate that into a steep hourly growth.
    /// </summary>
    public TimeSpan MinSpan { get; set; } = TimeSpan.Zero;

    /// <summary>The span in force: <see cref="MinSpan"/>, or a quarter of the window when it is zero.</summary>
    internal TimeSpan EffectiveMinSpan => MinSpan > TimeSpan.Zero ? MinSpan : Window / 4;

    internal void Validate()
    {
        Checks.Positive(Window, nameof(Window));
        Checks.Positive(Threshold, nameof(Threshold));
        Checks.AtLeast(MinSamples, 3, nameof(MinSamples));
        Checks.AtLeast(SubWindows, 3, nameof(SubWindows));
        if (MinSpan < TimeSpan.Zero || MinSpan > Window) throw new ArgumentOutOfRangeException(nameof(MinSpan), MinSpan, "MinSpan must be between 0 and the window.");
    }
}

/// <summary>Options of <see cref="GcOverheadRule"/>, bound from <c>Apm:Rules:GcOverhead:*</c>.</summary>
public sealed class GcOverheadOptions
{
    /// <summary>How far back GC time is measured.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Share of wall time in GC above which the rule breaches (0.10 = 10%).</summary>
    public double Threshold { get; set; } = 0.10;

    /// <summary>Fewest samples in the window (since the last restart).</summary>
    public int MinSamples { get; set; } = 3;

    /// <summary>Shortest uptime span measured; shorter spans are too noisy to judge.</summary>
    public TimeSpan MinSpan { get; set; } = TimeSpan.FromMinutes(1);

    internal void Validate()
    {
        Checks.Positive(Window, nameof(Window));
        Checks.Fraction(Threshold, nameof(Threshold));
        Checks.AtLeast(MinSamples, 2, nameof(MinSamples));
        if (MinSpan < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(MinSpan), MinSpan, "MinSpan must not be negative.");
        }
    }
}

internal static class Checks
{
    public static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a positive duration.");
        }
    }

    public static void Positive(double value, string name)
    {
        if (!(value > 0) || !double.IsFinite(value))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a positive finite number.");
        }
    }

    public static void AtLeast(long value, long min, string name)
    {
        if (value < min)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least {min.ToString(CultureInfo.InvariantCulture)}.");
        }
    }

    public static void Fraction(double value, string name)
    {
        if (!(value > 0 && value <= 1))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must lie in (0, 1].");
        }
    }
}

internal static class Fmt
{
    public static string N(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    public static string N(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static string Series(IEnumerable<long> values) => string.Join(", ", values.Select(N));

    public static string Times(IEnumerable<DateTimeOffset> values) =>
        string.Join(", ", values.Select(t => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)));

    public static string Span(TimeSpan span) => span.ToString("c", CultureInfo.InvariantCulture);
}
