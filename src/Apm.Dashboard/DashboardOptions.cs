namespace Apm.Dashboard;

/// <summary>Settings of the dashboard, bound from "Apm:Dashboard" (env: Apm__Dashboard__*).</summary>
public sealed class DashboardOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Apm:Dashboard";

    /// <summary>
    /// How often the one server-side poller reads InfluxDB for the pages that are open (live updates over SSE). It
    /// runs only while a browser listens; its cost does not grow with the number of browsers.
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>A folder with fleet.json and jvm.json replacing the panel definitions built in (dashboards/panels).</summary>
    public string? PanelsDirectory { get; set; }

    /// <summary>Most points per series a chart gets; the server picks the step so a range fits (about the chart's width in pixels).</summary>
    public int ChartPoints { get; set; } = 800;

    /// <summary>How far back each live update of a JVM page reads (covers the aggregator's batching delay).</summary>
    public TimeSpan LiveWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The retention policy that holds the downsampled copy for long ranges (<c>apm_1y</c> in docs/operations.md: 5-minute
    /// <c>value</c> means and <c>max</c> maxima). Null: charts always read the raw data.
    /// </summary>
    public string? LongRangePolicy { get; set; }

    /// <summary>A chart whose range starts further back than this reads <see cref="LongRangePolicy"/> (the raw policy's duration).</summary>
    public TimeSpan LongRangeAfter { get; set; } = TimeSpan.FromDays(30);
}
