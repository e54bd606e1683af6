namespace Apm.Dashboard.Panels;

/// <summary>How a fleet cell reads, shared by the server-rendered page and the live events so both say the same.</summary>
public static class FleetCell
{
    /// <summary>"12 MiB / 128 MiB" when the column has a maximum, else the formatted value.</summary>
    public static string Text(FleetRow row, FleetColumnDefinition column, int index)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(column);
        var value = Units.Format(row.Values[index], column.Unit);
        return column.Max is null || row.Maxima[index] is null ? value : value + " / " + Units.Format(row.Maxima[index], column.Unit);
    }

    /// <summary>Value over maximum (0..1) for a meter, or null.</summary>
    public static double? Ratio(FleetRow row, int index)
    {
        ArgumentNullException.ThrowIfNull(row);
        return row.Values[index] is { } v && row.Maxima[index] is { } m && m > 0 ? Math.Clamp(v / m, 0, 1) : null;
    }

    /// <summary>"none" or the firing rules.</summary>
    public static string AlertsText(FleetRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        return row.FiringRules.Count == 0 ? "none" : string.Join(", ", row.FiringRules);
    }

    /// <summary>A status as words and a shape, so it does not depend on color alone.</summary>
    public static string StatusText(string status) => status switch
    {
        "live" => "● live",
        "stale" => "◐ stale",
        "gone" => "○ gone",
        "unreadable" => "⚠ unreadable",
        _ => "? " + status,
    };
}
