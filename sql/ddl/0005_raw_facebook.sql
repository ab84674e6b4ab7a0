-- Facebook Ads: accounts, campaigns, ad sets, ads, daily insights per ad, token health, and how
-- much spend each restatement moved per account and day.
CREATE TABLE raw_facebook.ad_accounts (
    id              text        PRIMARY KEY,
    name            text,
    currency        text        NOT NULL,
    timezone_name   text        NOT NULL,
    account_status  integer,
    _raw            jsonb       NOT NULL,
    _loaded_at      timestamptz NOT NULL DEFAULT now(),
    _deleted_at     timestamptz
);

CREATE TABLE raw_facebook.campaigns (
    id                text        PRIMARY KEY,
    account_id        text        NOT NULL,
    name              text,
    status            text,
    effective_status  text,
    updated_time      timestamptz,
    _raw              jsonb       NOT NULL,
    _loaded_at        timestamptz NOT NULL DEFAULT now(),
    _deleted_at       timestamptz
);

CREATE TABLE raw_facebook.adsets (
    id                text        PRIMARY KEY,
    account_id        text        NOT NULL,
    campaign_id       text,
    name              text,
    status            text,
    effective_status  text,
    updated_time      timestamptz,
    _raw              jsonb       NOT NULL,
    _loaded_at        timestamptz NOT NULL DEFAULT now(),
    _deleted_at       timestamptz
);

CREATE TABLE raw_facebook.ads (
    id                text        PRIMARY KEY,
    account_id        text        NOT NULL,
    campaign_id       text,
    adset_id          text,
    name              text,
    status            text,
    effective_status  text,
    updated_time      timestamptz,
    _raw              jsonb       NOT NULL,
    _loaded_at        timestamptz NOT NULL DEFAULT now(),
    _deleted_at       timestamptz
);

CREATE TABLE raw_facebook.ad_insights_daily (
    ad_id             text          NOT NULL,
    date              date          NOT NULL,
    account_id        text          NOT NULL,
    ad_name           text,
    adset_id          text,
    campaign_id       text,
    campaign_name     text,
    spend             numeric(14,2) NOT NULL,
    impressions       bigint        NOT NULL,
    clicks            bigint        NOT NULL,
    leads             bigint        NOT NULL,
    actions           jsonb,
    account_currency  text          NOT NULL,
    account_timezone  text          NOT NULL,
    _raw              jsonb         NOT NULL,
    _loaded_at        timestamptz   NOT NULL DEFAULT now(),
    _deleted_at       timestamptz,
    PRIMARY KEY (ad_id, date)
);
CREATE INDEX ad_insights_account_date_idx ON raw_facebook.ad_insights_daily (account_id, date);

CREATE TABLE raw_facebook.token_info (
    token_id                text        PRIMARY KEY,  -- a hash: which token, never the token
    app_id                  text,
    type                    text,
    application             text,
    is_valid                boolean     NOT NULL,
    expires_at              timestamptz,  -- NULL: never expires
    data_access_expires_at  timestamptz,
    scopes                  jsonb       NOT NULL,
    user_id                 text,
    _raw                    jsonb       NOT NULL,
    _loaded_at              timestamptz NOT NULL DEFAULT now(),
    _deleted_at             timestamptz
);

CREATE TABLE ops.facebook_restatements (
    id            bigserial     PRIMARY KEY,
    restated_at   timestamptz   NOT NULL DEFAULT now(),
    account_id    text          NOT NULL,
    date          date          NOT NULL,
    ads           integer       NOT NULL,
    spend_before  numeric(14,2) NOT NULL,
    spend_after   numeric(14,2) NOT NULL
);
CREATE INDEX facebook_restatements_idx ON ops.facebook_restatements (account_id, date);
