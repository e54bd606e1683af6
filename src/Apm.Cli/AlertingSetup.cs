using Apm.Aggregator.Alerting;
using Apm.Aggregator.Reports;
using Apm.Reports;
using Apm.Alerts.Mail;
using Apm.Alerts.Rules;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Apm.Cli;

/// <summary>Binds the rules (Apm:Rules:*), the alert lifecycle (Apm:Alerts:*) and alert e-mail (Apm:Smtp:*, Apm:Alerts:To) for the aggregator role.</summary>
internal static class AlertingSetup
{
    /// <summary>
    /// Registers the <see cref="ReportSink"/> (always: over the process's one <see cref="ReportStore"/>, registered by
    /// AddApmApi), the <see cref="AlertSink"/> the aggregator picks up (when the rules are on), and, when Apm:Smtp:Host is
    /// set, the outbox and its sender (which also sends the "report ready" mails). Throws <see cref="InvalidOperationException"/> or <see cref="ArgumentOutOfRangeException"/> naming a bad setting.
    /// </summary>
    public static void AddApmAlerting(this IServiceCollection services, IConfiguration config, string stateDir, string? dashboardUrl, ILogger bootLogger)
    {
        var options = config.GetSection(AlertingOptions.Section).Get<AlertingOptions>() ?? new AlertingOptions();
        options.Validate();
        // Reports of heap dumps asked for by the dashboard, the API or the CLI arrive whether or not the rules run.
        services.AddSingleton(sp => new ReportSink(sp.GetRequiredService<ReportStore>(),
            sp.GetService<MailDeliveryService>() is { } delivery ? delivery.Queue : null));
        if (!options.Enabled)
        {
            bootLogger.LogInformation("Leak rules are off (Apm:Alerts:Enabled=false)");
            return;
        }

        var rules = new RuleSet(
            Bind<FinalizerBacklogOptions>(config, RuleIds.FinalizerBacklog),
            Bind<TimerRetainedFinalizableOptions>(config, RuleIds.TimerRetainedFinalizable),
            Bind<OldGenGrowthOptions>(config, RuleIds.OldGenGrowth),
            Bind<GcOverheadOptions>(config, RuleIds.GcOverhead),
            options.DisabledRules());
        var engine = new RuleEngine(rules, options);

        var smtp = ReadSmtp(config, dashboardUrl);
        if (smtp is null)
        {
            bootLogger.LogInformation("Alert e-mail is off (set Apm__Smtp__Host, Apm__Smtp__From and Apm__Alerts__To to send it)");
            services.AddSingleton(sp => new AlertSink(engine) { HeapDumpRules = options.HeapDumpRuleSet(), HeapDumpExpiry = options.HeapDumpExpiry, LoadActive = LoadActive(sp) });
            return;
        }

        var outboxDir = config["Apm:Alerts:OutboxDirectory"] is { Length: > 0 } dir ? dir : Path.Combine(stateDir, "outbox");
        var outbox = new MailOutbox(outboxDir, smtp);
        services.AddSingleton(outbox);
        services.AddSingleton(sp => new MailDeliveryService(outbox, sp.GetRequiredService<ILogger<MailDeliveryService>>())
        {
            PollInterval = config.GetValue("Apm:Alerts:MailPollInterval", TimeSpan.FromSeconds(5)),
        });
        services.AddHostedService(sp => sp.GetRequiredService<MailDeliveryService>());
        services.AddSingleton<Apm.Server.ICounterSource>(sp => new MailCounterSource(sp.GetRequiredService<MailDeliveryService>()));
        services.AddSingleton(sp =>
        {
            var delivery = sp.GetRequiredService<MailDeliveryService>();
            return new AlertSink(engine, delivery.Queue) { HeapDumpRules = options.HeapDumpRuleSet(), HeapDumpExpiry = options.HeapDumpExpiry, LoadActive = LoadActive(sp) };
        });
        bootLogger.LogInformation("Alert e-mail to {To} through {Host}:{Port}; outbox {Dir}", string.Join(", ", smtp.To), smtp.Host, smtp.Port, outbox.Directory);
    }

    /// <summary>Firing and pending alerts of the last week, read from InfluxDB whenever the aggregator is assigned partitions.</summary>
    private static Func<CancellationToken, Task<IReadOnlyList<AlertEvent>>>? LoadActive(IServiceProvider sp) =>
        sp.GetService<Apm.Influx.InfluxQueryClient>() is { } influx ? ct => AlertRestore.LoadActiveAsync(influx, TimeSpan.FromDays(7), ct) : null;

    /// <summary>The SMTP settings, or null when no host is configured (e-mail off).</summary>
    public static SmtpOptions? ReadSmtp(IConfiguration config, string? dashboardUrl)
    {
        var s = config.GetSection("Apm:Smtp");
        if (string.IsNullOrWhiteSpace(s["Host"])) return null;
        var link = config["Apm:Alerts:DashboardUrl"] is { Length: > 0 } configured ? configured : dashboardUrl;
        var options = new SmtpOptions
        {
            Host = s["Host"]!,
            Port = s.GetValue("Port", 25),
            From = s["From"] ?? "",
            To = SmtpOptions.ParseRecipients(config["Apm:Alerts:To"]),
            EnableSsl = s.GetValue("EnableSsl", false),
            Username = s["Username"],
            Password = s["Password"],
            Timeout = s.GetValue("Timeout", TimeSpan.FromSeconds(30)),
            RetryBaseDelay = s.GetValue("RetryBaseDelay", TimeSpan.FromSeconds(30)),
            RetryMaxDelay = s.GetValue("RetryMaxDelay", TimeSpan.FromHours(1)),
            DashboardBaseUrl = string.IsNullOrEmpty(link) ? null : new Uri(link, UriKind.Absolute),
        };
        options.Validate();
        return options;
    }

    private static T Bind<T>(IConfiguration config, string ruleId)
        where T : new() =>
        config.GetSection("Apm:Rules:" + ruleId).Get<T>() ?? new T();

    /// <summary>For messages: the first listen URL with a wildcard host replaced by 127.0.0.1.</summary>
    public static string? FirstUrl(string urls)
    {
        var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        if (first is null || first.EndsWith(":0", StringComparison.Ordinal)) return null;
        return first.Replace("://+", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://*", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal);
    }
}
