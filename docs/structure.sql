-- Rayces database schema, as `pg_dump --schema-only` shows it after every migration.
-- Generated: edit the revisions in alembic/versions/, then regenerate with
--   raycesctl schema dump --output-file docs/structure.sql

CREATE SCHEMA rayces_compat;

CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

COMMENT ON EXTENSION btree_gist IS 'support for indexing common datatypes in GiST (created by revision 20250718000014)';

CREATE FUNCTION public.time_subtype_diff(x time without time zone, y time without time zone) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT
    AS $$SELECT EXTRACT(EPOCH FROM (x - y))$$;

CREATE TYPE public.timerange AS RANGE (
    subtype = time without time zone,
    multirange_type_name = public.timemultirange,
    subtype_diff = public.time_subtype_diff
);

CREATE FUNCTION public.appointments_state_machine() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.state IS DISTINCT FROM OLD.state
           AND NEW.state IN ('draft', 'pre_confirmed', 'confirmed', 'executed', 'cancelled')
           AND (OLD.state, NEW.state) NOT IN (
               ('draft', 'pre_confirmed'),
               ('pre_confirmed', 'confirmed'),
               ('confirmed', 'executed'),
               ('draft', 'cancelled'),
               ('pre_confirmed', 'cancelled'),
               ('confirmed', 'cancelled')
           ) THEN
            RAISE EXCEPTION
                'appointments %: no appointment event leads from % to %',
                OLD.id, OLD.state, NEW.state
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_appointments_state_machine';
        END IF;
        IF OLD.confirmed_at IS NOT NULL AND NEW.confirmed_at IS DISTINCT FROM OLD.confirmed_at THEN
            RAISE EXCEPTION
                'appointments %: confirmed_at is set once and never changed',
                OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_appointments_state_machine';
        END IF;
        IF OLD.executed_at IS NOT NULL AND NEW.executed_at IS DISTINCT FROM OLD.executed_at THEN
            RAISE EXCEPTION
                'appointments %: executed_at is set once and never changed',
                OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_appointments_state_machine';
        END IF;
        IF OLD.cancelled_at IS NOT NULL AND NEW.cancelled_at IS DISTINCT FROM OLD.cancelled_at THEN
            RAISE EXCEPTION
                'appointments %: cancelled_at is set once and never changed',
                OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_appointments_state_machine';
        END IF;
    END IF;
    IF NEW.state = 'draft' AND NEW.confirmed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state draft does not allow confirmed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'draft' AND NEW.executed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state draft does not allow executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'draft' AND NEW.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state draft does not allow cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'pre_confirmed' AND NEW.confirmed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state pre_confirmed does not allow confirmed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'pre_confirmed' AND NEW.executed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state pre_confirmed does not allow executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'pre_confirmed' AND NEW.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state pre_confirmed does not allow cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'confirmed' AND NEW.confirmed_at IS NULL THEN
        RAISE EXCEPTION
            'appointments %: state confirmed requires confirmed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'confirmed' AND NEW.executed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state confirmed does not allow executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'confirmed' AND NEW.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state confirmed does not allow cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'executed' AND NEW.confirmed_at IS NULL THEN
        RAISE EXCEPTION
            'appointments %: state executed requires confirmed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'executed' AND NEW.executed_at IS NULL THEN
        RAISE EXCEPTION
            'appointments %: state executed requires executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'executed' AND NEW.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state executed does not allow cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'cancelled' AND NEW.cancelled_at IS NULL THEN
        RAISE EXCEPTION
            'appointments %: state cancelled requires cancelled_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'cancelled' AND NEW.executed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'appointments %: state cancelled does not allow executed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    IF NEW.state = 'executed' AND NOT (NEW.executed_at >= NEW.starts_at) THEN
        RAISE EXCEPTION
            'appointments %: an appointment cannot be executed before it starts',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_appointments_state_machine';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION public.credit_transactions_state_machine() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IN ('completed') AND NEW IS DISTINCT FROM OLD THEN
            RAISE EXCEPTION
                'credit_transactions %: a credit transaction that is % cannot change',
                OLD.id, OLD.status
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_credit_transactions_state_machine',
                      HINT = 'record a compensating transaction instead';
        END IF;
        IF NEW.status IS DISTINCT FROM OLD.status
           AND NEW.status IN ('pending', 'completed', 'failed', 'cancelled')
           AND (OLD.status, NEW.status) NOT IN (
               ('pending', 'completed'),
               ('pending', 'failed'),
               ('pending', 'cancelled')
           ) THEN
            RAISE EXCEPTION
                'credit_transactions %: no credit transaction event leads from % to %',
                OLD.id, OLD.status, NEW.status
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_credit_transactions_state_machine';
        END IF;
        IF OLD.processed_at IS NOT NULL AND NEW.processed_at IS DISTINCT FROM OLD.processed_at THEN
            RAISE EXCEPTION
                'credit_transactions %: processed_at is set once and never changed',
                OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_credit_transactions_state_machine';
        END IF;
    END IF;
    IF NEW.status = 'pending' AND NEW.processed_at IS NOT NULL THEN
        RAISE EXCEPTION
            'credit_transactions %: state pending does not allow processed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_credit_transactions_state_machine';
    END IF;
    IF NEW.status = 'completed' AND NEW.processed_at IS NULL THEN
        RAISE EXCEPTION
            'credit_transactions %: state completed requires processed_at',
            NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'trg_credit_transactions_state_machine';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION public.current_organization_id() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$SELECT NULLIF(current_setting('app.current_organization_id', true), '')::bigint$$;

CREATE FUNCTION public.students_state_machine() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.state IS DISTINCT FROM OLD.state
           AND NEW.state IN ('admission', 'active', 'inactive', 'discharged')
           AND (OLD.state, NEW.state) NOT IN (
               ('admission', 'active'),
               ('active', 'inactive'),
               ('inactive', 'active'),
               ('active', 'discharged'),
               ('inactive', 'discharged')
           ) THEN
            RAISE EXCEPTION
                'students %: no student event leads from % to %',
                OLD.id, OLD.state, NEW.state
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'trg_students_state_machine';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION rayces_compat.assign_default_organization() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    IF NEW.organization_id IS NULL THEN
        NEW.organization_id := (SELECT organization_id FROM rayces_compat.default_organization
                                WHERE accepts_legacy_writes);
    END IF;
    RETURN NEW;
END
$$;

CREATE TABLE public.alembic_version (
    version_num character varying(32) NOT NULL
);

CREATE TABLE public.appointments (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    professional_id bigint NOT NULL,
    student_id bigint,
    client_id bigint NOT NULL,
    state character varying DEFAULT 'draft'::character varying NOT NULL,
    starts_at timestamp(6) with time zone NOT NULL,
    ends_at timestamp(6) with time zone NOT NULL,
    price_cents integer DEFAULT 0 NOT NULL,
    currency character varying(3) DEFAULT 'ARS'::character varying NOT NULL,
    notes text,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    duration_minutes integer DEFAULT 60,
    confirmed_at timestamp(6) with time zone,
    executed_at timestamp(6) with time zone,
    cancelled_at timestamp(6) with time zone,
    cancellation_reason character varying,
    uses_credit boolean DEFAULT false,
    CONSTRAINT chk_appointments_currency_format CHECK (((currency)::text ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT chk_appointments_duration_positive CHECK ((duration_minutes > 0)),
    CONSTRAINT chk_appointments_price_non_negative CHECK ((price_cents >= 0)),
    CONSTRAINT chk_appointments_state CHECK (((state)::text = ANY ((ARRAY['draft'::character varying, 'pre_confirmed'::character varying, 'confirmed'::character varying, 'executed'::character varying, 'cancelled'::character varying])::text[]))),
    CONSTRAINT chk_appointments_time_order CHECK ((ends_at > starts_at))
);

ALTER TABLE public.appointments ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.appointments_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.availability_rules (
    id bigint NOT NULL,
    professional_id bigint NOT NULL,
    organization_id bigint NOT NULL,
    day_of_week integer NOT NULL,
    start_time time without time zone NOT NULL,
    end_time time without time zone NOT NULL,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_availability_rules_time_order CHECK ((end_time > start_time)),
    CONSTRAINT chk_valid_day_of_week CHECK (((day_of_week >= 0) AND (day_of_week <= 6)))
);

ALTER TABLE public.availability_rules ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.availability_rules_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.credit_balances (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    user_id bigint NOT NULL,
    balance integer DEFAULT 0 NOT NULL,
    lifetime_purchased integer DEFAULT 0 NOT NULL,
    lifetime_used integer DEFAULT 0 NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_credit_balances_balance_non_negative CHECK ((balance >= 0)),
    CONSTRAINT chk_credit_balances_lifetime_purchased_non_negative CHECK ((lifetime_purchased >= 0)),
    CONSTRAINT chk_credit_balances_lifetime_used_non_negative CHECK ((lifetime_used >= 0))
);

ALTER TABLE public.credit_balances ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.credit_balances_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.credit_transactions (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    user_id bigint NOT NULL,
    credit_balance_id bigint NOT NULL,
    appointment_id bigint,
    amount integer NOT NULL,
    transaction_type character varying NOT NULL,
    status character varying DEFAULT 'pending'::character varying NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb,
    payment_method character varying,
    payment_reference character varying,
    processed_at timestamp(6) with time zone,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_credit_transactions_amount_sign CHECK (
CASE transaction_type
    WHEN 'purchase'::text THEN (amount > 0)
    WHEN 'cancellation_refund'::text THEN (amount > 0)
    WHEN 'appointment_debit'::text THEN (amount < 0)
    WHEN 'admin_adjustment'::text THEN (amount <> 0)
    ELSE NULL::boolean
END),
    CONSTRAINT chk_credit_transactions_status CHECK (((status)::text = ANY ((ARRAY['pending'::character varying, 'completed'::character varying, 'failed'::character varying, 'cancelled'::character varying])::text[]))),
    CONSTRAINT chk_valid_transaction_type CHECK (((transaction_type)::text = ANY ((ARRAY['purchase'::character varying, 'cancellation_refund'::character varying, 'appointment_debit'::character varying, 'admin_adjustment'::character varying])::text[])))
);

ALTER TABLE public.credit_transactions ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.credit_transactions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.likes (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    post_id bigint NOT NULL,
    created_at timestamp(6) with time zone NOT NULL,
    updated_at timestamp(6) with time zone NOT NULL,
    organization_id bigint NOT NULL
);

CREATE SEQUENCE public.likes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.likes_id_seq OWNED BY public.likes.id;

CREATE TABLE public.organizations (
    id bigint NOT NULL,
    name character varying NOT NULL,
    subdomain character varying NOT NULL,
    status character varying DEFAULT 'active'::character varying NOT NULL,
    time_zone character varying DEFAULT 'UTC'::character varying NOT NULL,
    settings jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_organizations_name_present CHECK ((length(btrim((name)::text)) > 0)),
    CONSTRAINT chk_organizations_status CHECK (((status)::text = ANY ((ARRAY['active'::character varying, 'suspended'::character varying, 'archived'::character varying])::text[]))),
    CONSTRAINT chk_organizations_subdomain_format CHECK (((subdomain)::text ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'::text))
);

ALTER TABLE public.organizations ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.organizations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.posts (
    id bigint NOT NULL,
    post_id character varying,
    hash_id character varying,
    source character varying,
    metadata jsonb,
    filename character varying,
    created_at timestamp(6) with time zone NOT NULL,
    updated_at timestamp(6) with time zone NOT NULL,
    organization_id bigint NOT NULL
);

CREATE SEQUENCE public.posts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.posts_id_seq OWNED BY public.posts.id;

CREATE TABLE public.professionals (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    user_id bigint NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    title character varying,
    specialization character varying,
    bio text,
    license_number character varying,
    weekly_schedule jsonb DEFAULT '{}'::jsonb,
    blocked_dates jsonb DEFAULT '[]'::jsonb,
    session_duration_minutes integer DEFAULT 60,
    buffer_minutes integer DEFAULT 15,
    accepts_new_clients boolean DEFAULT true,
    session_price_cents integer,
    currency character varying DEFAULT 'ARS'::character varying,
    CONSTRAINT chk_professionals_buffer_non_negative CHECK ((buffer_minutes >= 0)),
    CONSTRAINT chk_professionals_currency_format CHECK (((currency)::text ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT chk_professionals_price_non_negative CHECK ((session_price_cents >= 0)),
    CONSTRAINT chk_professionals_session_duration_positive CHECK ((session_duration_minutes > 0))
);

ALTER TABLE public.professionals ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.professionals_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.roles (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    name character varying NOT NULL,
    description text,
    permissions jsonb DEFAULT '[]'::jsonb NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL
);

ALTER TABLE public.roles ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.roles_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.students (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    guardian_id bigint NOT NULL,
    first_name character varying NOT NULL,
    last_name character varying NOT NULL,
    date_of_birth date,
    state character varying DEFAULT 'admission'::character varying NOT NULL,
    notes text,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_students_state CHECK (((state)::text = ANY ((ARRAY['admission'::character varying, 'active'::character varying, 'inactive'::character varying, 'discharged'::character varying])::text[])))
);

ALTER TABLE public.students ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.students_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.time_slots (
    id bigint NOT NULL,
    professional_id bigint NOT NULL,
    organization_id bigint NOT NULL,
    appointment_id bigint,
    date date NOT NULL,
    start_time time without time zone NOT NULL,
    end_time time without time zone NOT NULL,
    available boolean DEFAULT true NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_time_slots_booked_not_available CHECK ((NOT (available AND (appointment_id IS NOT NULL)))),
    CONSTRAINT chk_time_slots_time_order CHECK ((end_time > start_time))
);

ALTER TABLE public.time_slots ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.time_slots_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.user_roles (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    user_id bigint NOT NULL,
    role_id bigint NOT NULL,
    created_at timestamp(6) with time zone DEFAULT now() NOT NULL,
    updated_at timestamp(6) with time zone DEFAULT now() NOT NULL
);

ALTER TABLE public.user_roles ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.user_roles_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.users (
    id bigint NOT NULL,
    name character varying,
    email character varying,
    image character varying,
    username character varying,
    uid character varying,
    created_at timestamp(6) with time zone NOT NULL,
    updated_at timestamp(6) with time zone NOT NULL,
    organization_id bigint NOT NULL,
    encrypted_password character varying DEFAULT ''::character varying NOT NULL,
    reset_password_token character varying,
    reset_password_sent_at timestamp(6) with time zone,
    remember_created_at timestamp(6) with time zone,
    jti character varying DEFAULT (gen_random_uuid())::text NOT NULL,
    first_name character varying,
    last_name character varying,
    phone character varying,
    role character varying DEFAULT 'client'::character varying NOT NULL,
    CONSTRAINT chk_users_role CHECK (((role)::text = ANY ((ARRAY['admin'::character varying, 'staff'::character varying, 'professional'::character varying, 'client'::character varying])::text[])))
);

CREATE SEQUENCE public.users_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.users_id_seq OWNED BY public.users.id;

CREATE TABLE rayces_compat.default_organization (
    singleton boolean DEFAULT true NOT NULL,
    organization_id bigint NOT NULL,
    accepts_legacy_writes boolean DEFAULT true NOT NULL,
    CONSTRAINT chk_default_organization_singleton CHECK (singleton)
);

ALTER TABLE ONLY public.likes ALTER COLUMN id SET DEFAULT nextval('public.likes_id_seq'::regclass);

ALTER TABLE ONLY public.posts ALTER COLUMN id SET DEFAULT nextval('public.posts_id_seq'::regclass);

ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval('public.users_id_seq'::regclass);

ALTER TABLE ONLY public.alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT appointments_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.availability_rules
    ADD CONSTRAINT availability_rules_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.credit_balances
    ADD CONSTRAINT credit_balances_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.credit_transactions
    ADD CONSTRAINT credit_transactions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.availability_rules
    ADD CONSTRAINT excl_availability_rules_no_overlap EXCLUDE USING gist (organization_id WITH =, professional_id WITH =, day_of_week WITH =, public.timerange(start_time, end_time) WITH &&) WHERE (active);

ALTER TABLE ONLY public.time_slots
    ADD CONSTRAINT excl_time_slots_no_overlap EXCLUDE USING gist (organization_id WITH =, professional_id WITH =, tsrange((date + start_time), (date + end_time)) WITH &&);

ALTER TABLE ONLY public.likes
    ADD CONSTRAINT likes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.organizations
    ADD CONSTRAINT organizations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT posts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.professionals
    ADD CONSTRAINT professionals_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.roles
    ADD CONSTRAINT roles_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.students
    ADD CONSTRAINT students_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.time_slots
    ADD CONSTRAINT time_slots_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT uq_appointments_organization_id_id UNIQUE (organization_id, id);

ALTER TABLE ONLY public.credit_balances
    ADD CONSTRAINT uq_credit_balances_organization_id_id UNIQUE (organization_id, id);

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT uq_posts_organization_id_id UNIQUE (organization_id, id);

ALTER TABLE ONLY public.professionals
    ADD CONSTRAINT uq_professionals_organization_id_id UNIQUE (organization_id, id);

ALTER TABLE ONLY public.roles
    ADD CONSTRAINT uq_roles_organization_id_id UNIQUE (organization_id, id);

ALTER TABLE ONLY public.students
    ADD CONSTRAINT uq_students_organization_id_id UNIQUE (organization_id, id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT uq_users_organization_id_id UNIQUE (organization_id, id);

ALTER TABLE ONLY public.user_roles
    ADD CONSTRAINT user_roles_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE ONLY rayces_compat.default_organization
    ADD CONSTRAINT default_organization_pkey PRIMARY KEY (singleton);

CREATE INDEX idx_availability_lookup ON public.availability_rules USING btree (professional_id, day_of_week, active);

CREATE INDEX idx_available_slots ON public.time_slots USING btree (professional_id, date, available);

CREATE INDEX idx_credit_trans_org_status ON public.credit_transactions USING btree (organization_id, status);

CREATE INDEX idx_credit_trans_org_user_date ON public.credit_transactions USING btree (organization_id, user_id, created_at);

CREATE INDEX idx_credit_trans_payment_ref ON public.credit_transactions USING btree (payment_reference);

CREATE INDEX idx_org_availability ON public.availability_rules USING btree (organization_id, active);

CREATE INDEX idx_org_balance_lookup ON public.credit_balances USING btree (organization_id, balance);

CREATE INDEX idx_org_date_slots ON public.time_slots USING btree (organization_id, date);

CREATE UNIQUE INDEX idx_unique_time_slot ON public.time_slots USING btree (professional_id, date, start_time);

CREATE UNIQUE INDEX idx_unique_user_credit_balance ON public.credit_balances USING btree (organization_id, user_id);

CREATE INDEX index_appointments_on_org_id_and_professional_id_and_starts_at ON public.appointments USING btree (organization_id, professional_id, starts_at);

CREATE INDEX index_appointments_on_organization_id_and_client_id ON public.appointments USING btree (organization_id, client_id);

CREATE INDEX index_appointments_on_organization_id_and_state ON public.appointments USING btree (organization_id, state);

CREATE INDEX index_appointments_on_organization_id_and_student_id ON public.appointments USING btree (organization_id, student_id);

CREATE INDEX index_availability_rules_on_org_id_and_professional_id ON public.availability_rules USING btree (organization_id, professional_id);

CREATE INDEX index_credit_transactions_on_org_id_and_appointment_id ON public.credit_transactions USING btree (organization_id, appointment_id);

CREATE INDEX index_credit_transactions_on_org_id_and_credit_balance_id ON public.credit_transactions USING btree (organization_id, credit_balance_id);

CREATE UNIQUE INDEX index_credit_transactions_on_org_id_and_payment_reference ON public.credit_transactions USING btree (organization_id, payment_reference) WHERE (payment_reference IS NOT NULL);

CREATE INDEX index_likes_on_organization_id_and_post_id ON public.likes USING btree (organization_id, post_id);

CREATE INDEX index_likes_on_organization_id_and_user_id ON public.likes USING btree (organization_id, user_id);

CREATE UNIQUE INDEX index_organizations_on_subdomain ON public.organizations USING btree (subdomain);

CREATE INDEX index_professionals_on_organization_id_and_specialization ON public.professionals USING btree (organization_id, specialization);

CREATE UNIQUE INDEX index_professionals_on_organization_id_and_user_id ON public.professionals USING btree (organization_id, user_id);

CREATE UNIQUE INDEX index_roles_on_organization_id_and_name ON public.roles USING btree (organization_id, name);

CREATE INDEX index_students_on_organization_id_and_guardian_id ON public.students USING btree (organization_id, guardian_id);

CREATE INDEX index_students_on_organization_id_and_state ON public.students USING btree (organization_id, state);

CREATE UNIQUE INDEX index_time_slots_on_organization_id_and_appointment_id ON public.time_slots USING btree (organization_id, appointment_id);

CREATE INDEX index_user_roles_on_organization_id_and_role_id ON public.user_roles USING btree (organization_id, role_id);

CREATE UNIQUE INDEX index_user_roles_on_organization_id_and_user_id_and_role_id ON public.user_roles USING btree (organization_id, user_id, role_id);

CREATE UNIQUE INDEX index_users_on_jti ON public.users USING btree (jti);

CREATE UNIQUE INDEX index_users_on_organization_id_and_email ON public.users USING btree (organization_id, email);

CREATE INDEX index_users_on_organization_id_and_role ON public.users USING btree (organization_id, role);

CREATE UNIQUE INDEX index_users_on_reset_password_token ON public.users USING btree (reset_password_token);

CREATE TRIGGER trg_appointments_state_machine BEFORE INSERT OR UPDATE ON public.appointments FOR EACH ROW EXECUTE FUNCTION public.appointments_state_machine();

CREATE TRIGGER trg_credit_transactions_state_machine BEFORE INSERT OR UPDATE ON public.credit_transactions FOR EACH ROW EXECUTE FUNCTION public.credit_transactions_state_machine();

CREATE TRIGGER trg_likes_default_organization BEFORE INSERT ON public.likes FOR EACH ROW WHEN ((new.organization_id IS NULL)) EXECUTE FUNCTION rayces_compat.assign_default_organization();

CREATE TRIGGER trg_posts_default_organization BEFORE INSERT ON public.posts FOR EACH ROW WHEN ((new.organization_id IS NULL)) EXECUTE FUNCTION rayces_compat.assign_default_organization();

CREATE TRIGGER trg_students_state_machine BEFORE INSERT OR UPDATE ON public.students FOR EACH ROW EXECUTE FUNCTION public.students_state_machine();

CREATE TRIGGER trg_users_default_organization BEFORE INSERT ON public.users FOR EACH ROW WHEN ((new.organization_id IS NULL)) EXECUTE FUNCTION rayces_compat.assign_default_organization();

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT fk_appointments_client FOREIGN KEY (organization_id, client_id) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT fk_appointments_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT fk_appointments_professional FOREIGN KEY (organization_id, professional_id) REFERENCES public.professionals(organization_id, id);

ALTER TABLE ONLY public.appointments
    ADD CONSTRAINT fk_appointments_student FOREIGN KEY (organization_id, student_id) REFERENCES public.students(organization_id, id);

ALTER TABLE ONLY public.availability_rules
    ADD CONSTRAINT fk_availability_rules_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.availability_rules
    ADD CONSTRAINT fk_availability_rules_professional FOREIGN KEY (organization_id, professional_id) REFERENCES public.professionals(organization_id, id);

ALTER TABLE ONLY public.credit_balances
    ADD CONSTRAINT fk_credit_balances_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.credit_balances
    ADD CONSTRAINT fk_credit_balances_user FOREIGN KEY (organization_id, user_id) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.credit_transactions
    ADD CONSTRAINT fk_credit_transactions_appointment FOREIGN KEY (organization_id, appointment_id) REFERENCES public.appointments(organization_id, id);

ALTER TABLE ONLY public.credit_transactions
    ADD CONSTRAINT fk_credit_transactions_credit_balance FOREIGN KEY (organization_id, credit_balance_id) REFERENCES public.credit_balances(organization_id, id);

ALTER TABLE ONLY public.credit_transactions
    ADD CONSTRAINT fk_credit_transactions_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.credit_transactions
    ADD CONSTRAINT fk_credit_transactions_user FOREIGN KEY (organization_id, user_id) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.likes
    ADD CONSTRAINT fk_likes_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.likes
    ADD CONSTRAINT fk_likes_post FOREIGN KEY (organization_id, post_id) REFERENCES public.posts(organization_id, id);

ALTER TABLE ONLY public.likes
    ADD CONSTRAINT fk_likes_user FOREIGN KEY (organization_id, user_id) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT fk_posts_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.professionals
    ADD CONSTRAINT fk_professionals_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.professionals
    ADD CONSTRAINT fk_professionals_user FOREIGN KEY (organization_id, user_id) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.roles
    ADD CONSTRAINT fk_roles_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.students
    ADD CONSTRAINT fk_students_guardian FOREIGN KEY (organization_id, guardian_id) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.students
    ADD CONSTRAINT fk_students_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.time_slots
    ADD CONSTRAINT fk_time_slots_appointment FOREIGN KEY (organization_id, appointment_id) REFERENCES public.appointments(organization_id, id);

ALTER TABLE ONLY public.time_slots
    ADD CONSTRAINT fk_time_slots_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.time_slots
    ADD CONSTRAINT fk_time_slots_professional FOREIGN KEY (organization_id, professional_id) REFERENCES public.professionals(organization_id, id);

ALTER TABLE ONLY public.user_roles
    ADD CONSTRAINT fk_user_roles_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY public.user_roles
    ADD CONSTRAINT fk_user_roles_role FOREIGN KEY (organization_id, role_id) REFERENCES public.roles(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.user_roles
    ADD CONSTRAINT fk_user_roles_user FOREIGN KEY (organization_id, user_id) REFERENCES public.users(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.users
    ADD CONSTRAINT fk_users_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id);

ALTER TABLE ONLY rayces_compat.default_organization
    ADD CONSTRAINT fk_default_organization_organization FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE public.appointments ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.availability_rules ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.credit_balances ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.credit_transactions ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.likes ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.organizations ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.posts ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.professionals ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.roles ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.students ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON public.appointments USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.availability_rules USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.credit_balances USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.credit_transactions USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.likes USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.organizations FOR SELECT USING ((id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.posts USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.professionals USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.roles USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.students USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.time_slots USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.user_roles USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

CREATE POLICY tenant_isolation ON public.users USING ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id))) WITH CHECK ((organization_id = ( SELECT public.current_organization_id() AS current_organization_id)));

ALTER TABLE public.time_slots ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.user_roles ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;

INSERT INTO public.alembic_version (version_num) VALUES ('20250718000017');
