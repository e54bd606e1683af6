using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Apm.Influx;
using Apm.Server;

namespace Apm.Dashboard.Panels;

/// <summary>One series query of a panel: a measurement of the JVM, filtered by tags, labelled from its tags.</summary>
public sealed class SeriesDefinition
{
    /// <summary>The measurement (a metric name such as <c>jvm.memory.used</c>).</summary>
    public string Metric { get; set; } = string.Empty;

    /// <summary>Tag filters: a value, <c>""</c> for "tag absent", <c>"*"</c> for "tag present".</summary>
    public Dictionary<string, string> Where { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Fleet sparklines: the column header.</summary>
    public string? Title { get; set; }

    /// <summary>Legend text; <c>{tag}</c> is replaced by the series' tag value.</summary>
    public string? Label { get; set; }

    /// <summary>Cumulative counter: show its per-second rate.</summary>
    public bool Rate { get; set; }

    /// <summary>Keep only this many series, those that grew most over the range (0 = all).</summary>
    public int Top { get; set; }

    /// <summary>Fleet columns: add the latest values of the series that differ by this tag (e.g. heap pools).</summary>
    public string? SumBy { get; set; }

    /// <summary>Fleet columns: <c>last</c> or <c>mean</c> over <see cref="Window"/>.</summary>
    public string Reduce { get; set; } = "last";

    /// <summary>Fleet columns and sparklines: how far back to look, like <c>5m</c>.</summary>
    public string Window { get; set; } = "5m";

    /// <summary>Sparklines: the downsampling step, like <c>1m</c>.</summary>
    public string? Step { get; set; }

    internal TimeSpan WindowSpan => ApiEndpoints.TryParseDuration(Window, out var w) ? w : TimeSpan.FromMinutes(5);

    internal TimeSpan? StepSpan => Step is not null && ApiEndpoints.TryParseDuration(Step, out var s) ? s : null;

    /// <summary>The InfluxQL conditions for <see cref="Where"/> (each starting with " AND ").</summary>
    internal string WhereClause()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var (tag, value) in Where)
        {
            sb.Append(" AND ").Append(InfluxQl.QuoteIdentifier(tag)).Append(value == "*" ? " != " : " = ").Append(InfluxQl.QuoteString(value == "*" ? string.Empty : value));
        }

        return sb.ToString();
    }

    /// <summary>The label of a series with <paramref name="tags"/>.</summary>
    internal string LabelFor(IReadOnlyDictionary<string, string> tags)
    {
        if (string.IsNullOrEmpty(Label)) return Metric;
        var label = Label;
        foreach (var (k, v) in tags) label = label.Replace("{" + k + "}", v, StringComparison.Ordinal);
        return label;
    }

    internal void Validate(string where)
    {
        if (!ApiEndpoints.IsMetricName(Metric)) throw new InvalidDataException($"{where}: metric '{Metric}' is not a metric name like jvm.memory.used");
        if (Reduce is not "last" and not "mean") throw new InvalidDataException($"{where}: reduce must be last or mean, not '{Reduce}'");
        if (!ApiEndpoints.TryParseDuration(Window, out _)) throw new InvalidDataException($"{where}: window '{Window}' is not a duration like 5m");
        if (Step is not null && (StepSpan is not { } s || s < TimeSpan.FromSeconds(1))) throw new InvalidDataException($"{where}: step '{Step}' is not a duration of at least 1s");
        if (Top < 0) throw new InvalidDataException($"{where}: top must not be negative");
    }
}

/// <summary>A chart of the JVM page.</summary>
public sealed class PanelDefinition
{
    /// <summary>Stable id (also the chart element's id suffix).</summary>
    public string Id { get; set; } = string.Empty;

    /// <summary>The chart's title.</summary>
    public string Title { get; set; } = string.Empty;

    /// <summary>UCUM unit of the y axis (<c>By</c>, <c>1</c> = ratio shown as percent, <c>{object}</c>, ...).</summary>
    public string Unit { get; set; } = "1";

    /// <summary>Draw the series stacked (heap regions).</summary>
    public bool Stacked { get; set; }

    /// <summary>The series.</summary>
    public List<SeriesDefinition> Series { get; set; } = [];

    /// <summary>An optional limit line: the sum of its series at each time.</summary>
    public SeriesDefinition? Max { get; set; }
}

/// <summary>A column of the fleet page: one value per JVM (and an optional maximum shown beside it).</summary>
public sealed class FleetColumnDefinition
{
    /// <summary>Stable id (also the sort key in the URL).</summary>
    public string Id { get; set; } = string.Empty;

    /// <summary>Column header.</summary>
    public string Title { get; set; } = string.Empty;

    /// <summary>UCUM unit of the value.</summary>
    public string Unit { get; set; } = "1";

    /// <summary>The measurement.</summary>
    public string Metric { get; set; } = string.Empty;

    /// <summary>Tag filters, as for <see cref="SeriesDefinition.Where"/>.</summary>
    public Dictionary<string, string> Where { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Add the values of the series that differ by this tag.</summary>
    public string? SumBy { get; set; }

    /// <summary><c>last</c> or <c>mean</c>.</summary>
    public string Reduce { get; set; } = "last";

    /// <summary>How far back to look.</summary>
    public string Window { get; set; } = "5m";

    /// <summary>An optional maximum shown as "value / max".</summary>
    public SeriesDefinition? Max { get; set; }

    internal SeriesDefinition AsSeries() => new() { Metric = Metric, Where = Where, SumBy = SumBy, Reduce = Reduce, Window = Window };
}

/// <summary>The fleet page: its columns and the heap sparkline.</summary>
public sealed class FleetDefinition
{
    /// <summary>Value columns, in order.</summary>
    public List<FleetColumnDefinition> Columns { get; set; } = [];

    /// <summary>The sparkline (a downsampled, summed series per JVM).</summary>
    public SeriesDefinition? Sparkline { get; set; }
}

/// <summary>The JVM page: its charts.</summary>
public sealed class JvmPageDefinition
{
    /// <summary>Charts, in order.</summary>
    public List<PanelDefinition> Panels { get; set; } = [];
}

/// <summary>
/// The panel definitions (dashboards/panels/*.json): embedded defaults, or the files of <c>Apm:Dashboard:PanelsDirectory</c>.
/// Loaded and validated once at start: a broken file stops the host with its name and the reason.
/// </summary>
public sealed class PanelDefinitions
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    };

    private PanelDefinitions(FleetDefinition fleet, JvmPageDefinition jvm)
    {
        Fleet = fleet;
        Jvm = jvm;
    }

    /// <summary>The fleet page's columns.</summary>
    public FleetDefinition Fleet { get; }

    /// <summary>The JVM page's charts.</summary>
    public JvmPageDefinition Jvm { get; }

    /// <summary>Loads fleet.json and jvm.json from <paramref name="directory"/>, or the embedded copies when null.</summary>
    public static PanelDefinitions Load(string? directory)
    {
        var fleet = Parse<FleetDefinition>(directory, "fleet.json");
        var jvm = Parse<JvmPageDefinition>(directory, "jvm.json");
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in jvm.Panels)
        {
            if (string.IsNullOrWhiteSpace(p.Id) || !ids.Add(p.Id)) throw new InvalidDataException($"jvm.json: panel id '{p.Id}' is empty or repeated");
            if (p.Series.Count == 0) throw new InvalidDataException($"jvm.json: panel '{p.Id}' has no series");
            for (var i = 0; i < p.Series.Count; i++) p.Series[i].Validate($"jvm.json: panel '{p.Id}' series {i}");
            p.Max?.Validate($"jvm.json: panel '{p.Id}' max");
        }

        ids.Clear();
        foreach (var c in fleet.Columns)
        {
            if (string.IsNullOrWhiteSpace(c.Id) || !ids.Add(c.Id)) throw new InvalidDataException($"fleet.json: column id '{c.Id}' is empty or repeated");
            c.AsSeries().Validate($"fleet.json: column '{c.Id}'");
            c.Max?.Validate($"fleet.json: column '{c.Id}' max");
        }

        fleet.Sparkline?.Validate("fleet.json: sparkline");
        return new PanelDefinitions(fleet, jvm);
    }

    private static T Parse<T>(string? directory, string name)
    {
        Stream stream;
        if (directory is null)
        {
            stream = typeof(PanelDefinitions).Assembly.GetManifestResourceStream("panels/" + name)
                     ?? throw new InvalidOperationException($"The embedded panel definition {name} is missing from the build.");
        }
        else
        {
            stream = File.OpenRead(Path.Combine(directory, name));
        }

        using (stream)
        {
            try
            {
                return JsonSerializer.Deserialize<T>(stream, Json) ?? throw new InvalidDataException($"{name}: empty");
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{name}: not valid panel JSON: {ex.Message}"), ex);
            }
        }
    }
}
