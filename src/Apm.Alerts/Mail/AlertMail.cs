using System.Globalization;
using System.Net;
using System.Net.Mail;
using System.Net.Mime;
using System.Text;

namespace Apm.Alerts.Mail;

/// <summary>The rendered parts of one alert e-mail; what the outbox persists (no addresses, no secrets).</summary>
/// <param name="Subject">Single-line subject (CR/LF and other control characters removed).</param>
/// <param name="Text">Plain-text body.</param>
/// <param name="Html">HTML body; everything that came from the JVM is HTML-encoded.</param>
public sealed record AlertMailContent(string Subject, string Text, string Html);

/// <summary>Composes alert e-mails: a subject, a text part and an HTML part with the evidence table and a dashboard link.</summary>
public static class AlertMail
{
    /// <summary>Subjects longer than this are cut, so a hostile display name cannot produce a huge header.</summary>
    public const int MaxSubjectLength = 200;

    /// <summary>Renders the subject and both bodies; pure, no I/O.</summary>
    public static AlertMailContent Render(AlertNotification notification, Uri? dashboardBaseUrl)
    {
        ArgumentNullException.ThrowIfNull(notification);
        var firing = string.Equals(notification.State, AlertNotification.Firing, StringComparison.OrdinalIgnoreCase);
        if (!firing && !string.Equals(notification.State, AlertNotification.Resolved, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"Alert state '{notification.State}' is neither 'firing' nor 'resolved'.", nameof(notification));

        var stateWord = firing ? "FIRING" : "RESOLVED";
        var subject = SingleLine($"[Apm] {stateWord} {notification.Rule} on {notification.JvmDisplayName}");
        var link = DashboardLink(dashboardBaseUrl, notification.JvmId);
        return new AlertMailContent(subject, RenderText(notification, stateWord, link), RenderHtml(notification, stateWord, link));
    }

    /// <summary>Builds the message for <paramref name="options"/>' sender and recipients; the caller disposes it.</summary>
    public static MailMessage Compose(AlertNotification notification, SmtpOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ToMessage(Render(notification, options.DashboardBaseUrl), options);
    }

    /// <summary>Builds a message with a text and an HTML alternative view (base64, UTF-8) from rendered content.</summary>
    public static MailMessage ToMessage(AlertMailContent content, SmtpOptions options)
    {
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(options);
        var message = new MailMessage { From = new MailAddress(options.From), Subject = SingleLine(content.Subject), SubjectEncoding = Encoding.UTF8 };
        try
        {
            foreach (var to in options.To) message.To.Add(new MailAddress(to));
            message.AlternateViews.Add(View(content.Text, MediaTypeNames.Text.Plain));
            message.AlternateViews.Add(View(content.Html, MediaTypeNames.Text.Html));
            return message;
        }
        catch
        {
            message.Dispose();
            throw;
        }
    }

    /// <summary>The dashboard's JVM page, <c>&lt;base&gt;/jvm?id=&lt;url-encoded id&gt;</c>, or null without a base URL.</summary>
    public static Uri? DashboardLink(Uri? dashboardBaseUrl, string jvmId)
    {
        ArgumentNullException.ThrowIfNull(jvmId);
        if (dashboardBaseUrl is null) return null;
        var root = dashboardBaseUrl.AbsoluteUri.TrimEnd('/');
        return new Uri(root + "/jvm?id=" + Uri.EscapeDataString(jvmId));
    }

    /// <summary>Replaces control characters (CR/LF above all: header injection) with spaces and cuts to <see cref="MaxSubjectLength"/>.</summary>
    public static string SingleLine(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var sb = new StringBuilder(Math.Min(value.Length, MaxSubjectLength));
        foreach (var c in value)
        {
            if (sb.Length == MaxSubjectLength) break;
            // U+2028/2029 are line breaks to some readers as well.
            sb.Append(char.IsControl(c) || c is '\u2028' or '\u2029' ? ' ' : c);
        }

        return sb.ToString().Trim();
    }

    private static AlternateView View(string body, string mediaType)
    {
        var view = AlternateView.CreateAlternateViewFromString(body, Encoding.UTF8, mediaType);
        // Base64 keeps long lines and any byte intact through every relay.
        view.TransferEncoding = TransferEncoding.Base64;
        return view;
    }

    private static string Time(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    private static string RenderText(AlertNotification n, string stateWord, Uri? link)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{stateWord}: {n.Rule} on {n.JvmDisplayName}\n\n");
        sb.Append(n.Summary).Append("\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"Alert:    {n.AlertId}\n");
        sb.Append(CultureInfo.InvariantCulture, $"JVM:      {n.JvmDisplayName} ({n.JvmId})\n");
        sb.Append(CultureInfo.InvariantCulture, $"Fired:    {Time(n.FiredAt)}\n");
        if (n.ResolvedAt is { } resolved) sb.Append(CultureInfo.InvariantCulture, $"Resolved: {Time(resolved)}\n");
        if (n.Evidence.Count > 0)
        {
            sb.Append("\nEvidence:\n");
            var width = n.Evidence.Max(e => e.Label.Length);
            foreach (var (label, value) in n.Evidence) sb.Append("  ").Append(label.PadRight(width)).Append("  ").Append(value).Append('\n');
        }

        if (n.TopClasses.Count > 0)
        {
            sb.Append("\nTop classes:\n");
            foreach (var c in n.TopClasses) sb.Append("  ").Append(c).Append('\n');
        }

        if (n.SuggestedFixes.Count > 0)
        {
            sb.Append("\nSuggested fixes:\n");
            for (var i = 0; i < n.SuggestedFixes.Count; i++) sb.Append(CultureInfo.InvariantCulture, $"  {i + 1}. {n.SuggestedFixes[i]}\n");
        }

        if (link is not null) sb.Append("\nDashboard: ").Append(link.AbsoluteUri).Append('\n');
        return sb.ToString();
    }

    private static string RenderHtml(AlertNotification n, string stateWord, Uri? link)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<h2>{stateWord}: {E(n.Rule)} on {E(n.JvmDisplayName)}</h2>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<p>{E(n.Summary)}</p>\n");
        sb.Append("<table>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<tr><th align=\"left\">Alert</th><td>{E(n.AlertId)}</td></tr>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<tr><th align=\"left\">JVM</th><td>{E(n.JvmDisplayName)} ({E(n.JvmId)})</td></tr>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<tr><th align=\"left\">Fired</th><td>{Time(n.FiredAt)}</td></tr>\n");
        if (n.ResolvedAt is { } resolved) sb.Append(CultureInfo.InvariantCulture, $"<tr><th align=\"left\">Resolved</th><td>{Time(resolved)}</td></tr>\n");
        sb.Append("</table>\n");
        if (n.Evidence.Count > 0)
        {
            sb.Append("<h3>Evidence</h3>\n<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\n");
            foreach (var (label, value) in n.Evidence) sb.Append(CultureInfo.InvariantCulture, $"<tr><th align=\"left\">{E(label)}</th><td>{E(value)}</td></tr>\n");
            sb.Append("</table>\n");
        }

        if (n.TopClasses.Count > 0)
        {
            sb.Append("<h3>Top classes</h3>\n<ol>\n");
            foreach (var c in n.TopClasses) sb.Append(CultureInfo.InvariantCulture, $"<li><code>{E(c)}</code></li>\n");
            sb.Append("</ol>\n");
        }

        if (n.SuggestedFixes.Count > 0)
        {
            sb.Append("<h3>Suggested fixes</h3>\n<ol>\n");
            foreach (var fix in n.SuggestedFixes) sb.Append(CultureInfo.InvariantCulture, $"<li>{E(fix)}</li>\n");
            sb.Append("</ol>\n");
        }

        if (link is not null) sb.Append(CultureInfo.InvariantCulture, $"<p><a href=\"{E(link.AbsoluteUri)}\">Open the JVM in the dashboard</a></p>\n");
        sb.Append("</body></html>\n");
        return sb.ToString();
    }
}
