using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;

namespace Apm.Dashboard.Panels;

/// <summary>
/// One fleet table row as HTML, every value HTML-encoded (text and attribute values alike: the encoder escapes
/// quotes, so a value cannot leave its attribute). The fleet page writes its rows with this instead of Razor markup:
/// a Razor row is about 55 render-tree frames, so a page of 2,500 JVMs built a tree of more than 131,000 frames, held
/// in arrays of up to 10 MB that went to the large-object heap on every render. As one markup string a row is one frame.
/// </summary>
public static class FleetRowMarkup
{
    private static readonly HtmlEncoder Encoder = HtmlEncoder.Default;

    /// <summary>One builder per thread, reused row after row: a fresh one per row was as much garbage as the rows.</summary>
    [ThreadStatic]
    private static StringBuilder? t_builder;

    /// <summary>The row's <c>&lt;tr&gt;</c> element.</summary>
    public static string Row(FleetRow row, FleetDefinition definition, string jvmLink)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(definition);
        var sb = t_builder ??= new StringBuilder(4096);
        sb.Clear();
        var j = row.Jvm;
        sb.Append("<tr data-jvm-id=\"").Append(Encode(j.Id)).Append("\"><th scope=\"row\" class=\"jvm\"><a href=\"").Append(Encode(jvmLink)).Append("\">")
            .Append(Encode(j.MainClass.Length == 0 ? "(unknown main class)" : j.MainClass)).Append("</a><span class=\"sub\">pid ")
            .Append(j.Pid.ToString(CultureInfo.InvariantCulture)).Append(" · ").Append(Encode(j.Id)).Append("</span></th>");
        sb.Append("<td class=\"status status-").Append(Encode(j.Status)).Append("\" data-col=\"status\" data-label=\"Status\"");
        if (j.Reason is not null) sb.Append(" title=\"").Append(Encode(j.Reason)).Append('"');
        sb.Append('>').Append(Encode(FleetCell.StatusText(j.Status))).Append("</td>");
        for (var i = 0; i < definition.Columns.Count; i++)
        {
            var c = definition.Columns[i];
            sb.Append("<td class=\"num\" data-col=\"").Append(Encode(c.Id)).Append("\" data-label=\"").Append(Encode(c.Title)).Append("\"><span class=\"value\">")
                .Append(Encode(FleetCell.Text(row, c, i))).Append("</span>");
            if (c.Max is not null)
            {
                var ratio = FleetCell.Ratio(row, i);
                sb.Append("<meter min=\"0\" max=\"1\" low=\"0.7\" high=\"0.9\" optimum=\"0\" value=\"")
                    .Append(ratio?.ToString("0.###", CultureInfo.InvariantCulture) ?? "0").Append("\" aria-label=\"").Append(Encode(c.Title)).Append(" of maximum\"></meter>");
            }

            sb.Append("</td>");
        }

        var trend = Encode(definition.Sparkline?.Title ?? "Trend");
        sb.Append("<td class=\"alerts").Append(row.FiringRules.Count > 0 ? " firing" : "").Append("\" data-col=\"alerts\" data-label=\"Firing alerts\">")
            .Append(Encode(FleetCell.AlertsText(row))).Append("</td>");
        sb.Append("<td class=\"spark\" data-label=\"").Append(trend).Append("\"><svg viewBox=\"0 0 ")
            .Append(Sparkline.Width.ToString(CultureInfo.InvariantCulture)).Append(' ').Append(Sparkline.Height.ToString(CultureInfo.InvariantCulture))
            .Append("\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"").Append(Encode(definition.Sparkline?.Title ?? "trend"))
            .Append("\"><polyline points=\"").Append(Encode(Sparkline.Points(row.Sparkline))).Append("\"></polyline></svg></td></tr>");
        var html = sb.ToString();
        if (sb.Capacity > 64 * 1024) t_builder = null; // a hostile row's size is not kept for the thread's life
        return html;
    }

    private static string Encode(string value) => Encoder.Encode(value);
}
