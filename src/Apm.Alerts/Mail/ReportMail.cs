using System.Globalization;
using System.Net;
using System.Text;

namespace Apm.Alerts.Mail;

/// <summary>What the "report ready" mail says: a heap-dump triage report that an alert asked for is stored.</summary>
/// <param name="ReportId">The report id (links: <c>&lt;base&gt;/reports/&lt;id&gt;</c>).</param>
/// <param name="AlertId">The alert that asked for the dump.</param>
/// <param name="JvmId">The JVM.</param>
/// <param name="JvmDisplayName">Main class and host (untrusted).</param>
/// <param name="TopFinding">Title of the first finding (untrusted: contains class names).</param>
/// <param name="CreatedAt">When the triage finished.</param>
/// <param name="DumpBytes">Size of the dump.</param>
public sealed record ReportNotification(string ReportId, string AlertId, string JvmId, string JvmDisplayName, string TopFinding, DateTimeOffset CreatedAt, long DumpBytes);

/// <summary>Renders the follow-up mail sent when an alert's triage report is ready.</summary>
public static class ReportMail
{
    /// <summary>Subject, text and HTML; pure.</summary>
    public static AlertMailContent Render(ReportNotification n, Uri? dashboardBaseUrl)
    {
        ArgumentNullException.ThrowIfNull(n);
        var link = dashboardBaseUrl is null ? null : new Uri(dashboardBaseUrl.AbsoluteUri.TrimEnd('/') + "/reports/" + Uri.EscapeDataString(n.ReportId));
        var subject = AlertMail.SingleLine($"[Apm] Report ready for {n.JvmDisplayName}: {n.TopFinding}");
        var text = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"The heap-dump triage report for {n.JvmDisplayName} is ready.\n\n")
            .Append(CultureInfo.InvariantCulture, $"Top finding: {n.TopFinding}\n\n")
            .Append(CultureInfo.InvariantCulture, $"Alert:  {n.AlertId}\nJVM:    {n.JvmId}\nReport: {n.ReportId}\nDump:   {n.DumpBytes} bytes\n")
            .Append(link is null ? "" : "\nReport: " + link.AbsoluteUri + "\n")
            .ToString();
        static string E(string s) => WebUtility.HtmlEncode(s);
        var html = new StringBuilder()
            .Append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n")
            .Append(CultureInfo.InvariantCulture, $"<h2>Report ready for {E(n.JvmDisplayName)}</h2>\n")
            .Append(CultureInfo.InvariantCulture, $"<p><strong>Top finding:</strong> {E(n.TopFinding)}</p>\n")
            .Append(CultureInfo.InvariantCulture, $"<table><tr><th align=\"left\">Alert</th><td>{E(n.AlertId)}</td></tr><tr><th align=\"left\">JVM</th><td>{E(n.JvmId)}</td></tr><tr><th align=\"left\">Report</th><td>{E(n.ReportId)}</td></tr><tr><th align=\"left\">Dump</th><td>{n.DumpBytes} bytes</td></tr></table>\n")
            .Append(link is null ? "" : $"<p><a href=\"{E(link.AbsoluteUri)}\">Open the report</a></p>\n")
            .Append("</body></html>\n")
            .ToString();
        return new AlertMailContent(subject, text, html);
    }
}
